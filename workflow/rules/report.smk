# ---------------------------------------------------------------- the review report
# Tables and figures are marked for Snakemake's report (`snakemake --report reports/report.html`),
# grouped by paper (category) and product (subcategory); the claims table, the provenance and
# reports/index.html are built with every `reproduce_all`.
# (Its input and param functions are in common.smk.)


rule table:
    input:
        products=product_inputs,
        plan=paper_plan,
    output:
        csv=report(
            layout.table("{paper}", "{name}", "csv"),
            caption="../report/table.rst",
            category="{paper}",
            subcategory="{name}",
        ),
        md=layout.table("{paper}", "{name}", "md"),
    log:
        layout.log("tables", "{paper}_{name}"),
    wildcard_constraints:
        paper=PAPER_PATTERN,
    conda:
        "../../envs/lbgap.yaml"
    params:
        what=product_caption,
    message:
        "Table {wildcards.paper}_{wildcards.name}"
    shell:
        "python -m lbgap.products.papers table --paper {wildcards.paper} --name {wildcards.name} "
        "--plan {input.plan} "
        "--csv {output.csv} --md {output.md} > {log} 2>&1"


rule table_view:
    input:
        md=rules.table.output.md,
    output:
        html=report(
            layout.table("{paper}", "{name}", "html"),
            caption="../report/table.rst",
            category="{paper}",
            subcategory="{name}",
        ),
    log:
        layout.log("tables", "{paper}_{name}.html"),
    wildcard_constraints:
        paper=PAPER_PATTERN,
    conda:
        "../../envs/lbgap.yaml"
    params:
        what=product_caption,
    message:
        "Table {wildcards.paper}_{wildcards.name} as HTML"
    shell:
        "python -m lbgap.products.htmlview --md {input.md} --html {output.html} > {log} 2>&1"


rule figure:
    input:
        products=product_inputs,
        plan=paper_plan,
    output:
        png=report(
            layout.figure("{paper}", "{name}", "png"),
            caption="../report/figure.rst",
            category="{paper}",
            subcategory="{name}",
        ),
        pdf=report(
            layout.figure("{paper}", "{name}", "pdf"),
            caption="../report/figure.rst",
            category="{paper}",
            subcategory="{name}",
        ),
    log:
        layout.log("figures", "{paper}_{name}"),
    wildcard_constraints:
        paper=PAPER_PATTERN,
    conda:
        "../../envs/lbgap.yaml"
    params:
        what=product_caption,
    message:
        "Figure {wildcards.paper}_{wildcards.name}"
    shell:
        "python -m lbgap.products.papers figure --paper {wildcards.paper} --name {wildcards.name} "
        "--plan {input.plan} "
        "--png {output.png} --pdf {output.pdf} > {log} 2>&1"


# ---------------------------------------------------------------- claims, provenance, overview
rule claims:
    input:
        tables=claim_tables,
        runs=claim_runs,
        plans=plan_files,
    output:
        html=report(
            layout.report_table("claims", "html"),
            caption="../report/claims.rst",
            category=OVERVIEW,
            subcategory="claims",
        ),
        csv=report(
            layout.report_table("claims", "csv"),
            caption="../report/claims.rst",
            category=OVERVIEW,
            subcategory="claims",
        ),
        md=layout.report_table("claims", "md"),
    log:
        layout.log("report", "claims"),
    conda:
        "../../envs/lbgap.yaml"
    message:
        "Checking the papers' claims on our tables"
    shell:
        "python -m lbgap.products.claims --plans {input.plans} --tables {input.tables} "
        "--csv {output.csv} --md {output.md} --html {output.html} > {log} 2>&1"


rule provenance:
    input:
        configfiles=config_files,
        manifests=data_manifests,
        products=[f for paper in PAPERS for f in paper_outputs(paper)],
        claims=rules.claims.output.csv,
        config=EFFECTIVE_CONFIG,
        plans=plan_files,
    output:
        html=report(
            layout.report_table("provenance", "html"),
            caption="../report/provenance.rst",
            category=OVERVIEW,
            subcategory="provenance",
        ),
        csv=report(
            layout.report_table("provenance", "csv"),
            caption="../report/provenance.rst",
            category=OVERVIEW,
            subcategory="provenance",
        ),
        md=layout.report_table("provenance", "md"),
        config=report(
            layout.EFFECTIVE_CONFIG_YAML,
            caption="../report/provenance.rst",
            category=OVERVIEW,
            subcategory="provenance",
        ),
    log:
        layout.log("report", "provenance"),
    conda:
        "../../envs/lbgap.yaml"
    params:
        repo=workflow.basedir,
        snakemake=SNAKEMAKE_VERSION,
    message:
        "Recording provenance: code, config, software, hardware, data, compute"
    shell:
        "python -m lbgap.products.provenance --config {input.config} --plans {input.plans} "
        "--repo {params.repo:q} --snakemake {params.snakemake} --configfiles {input.configfiles:q} --manifests {input.manifests} "
        "--csv {output.csv} --md {output.md} --html {output.html} --config-out {output.config} "
        "> {log} 2>&1"


rule index:
    input:
        products=[f for paper in PAPERS for f in paper_outputs(paper)],
        views=table_views(),
        other=other_tables,
        claims=rules.claims.output.csv,
        provenance=rules.provenance.output,
        products_list=INDEX_PRODUCTS,
    output:
        layout.INDEX_HTML,
    log:
        layout.log("report", "index"),
    conda:
        "../../envs/lbgap.yaml"
    params:
        scale=config["scale"],
        extra=[
            rules.claims.output.md,
            rules.claims.output.html,
            *rules.provenance.output,
        ],
    message:
        "Writing {output}"
    shell:
        "python -m lbgap.products.index_page --out {output} --scale {params.scale} "
        "--claims {input.claims} --extra {params.extra} --products {input.products_list} "
        "> {log} 2>&1"
