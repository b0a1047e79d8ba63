# ---------------------------------------------------------------- the review report
# Tables and figures are marked for Snakemake's report (`snakemake --report reports/report.html`),
# grouped by paper (category) and product (subcategory); the claims table, the provenance and
# reports/index.html are built with every `reproduce_all`.
from snakemake import __version__ as SNAKEMAKE_VERSION

from lbgap import claims as lbgap_claims
from lbgap import papers as lbgap_papers
from lbgap import summary as lbgap_summary

OVERVIEW = "Claims and provenance"  # sorts before the papers' categories in the report menu
PAPER_PATTERN = "|".join(PAPERS)  # {paper} is a paper of the config, never another table


report: "../report/workflow.rst"


def product_caption(wildcards):
    """What a product shows, for its caption: its `caption`, else its builder's first line."""
    product = lbgap_papers.product(wildcards.paper, wildcards.name)
    build = getattr(product.build, "func", product.build)  # a functools.partial's function
    doc = (build.__doc__ or wildcards.name).strip().splitlines()[0]
    return product.caption or doc


def table_views():
    """A readable HTML view of every table, for the report and the overview page."""
    return [
        f.replace(".csv", ".html")
        for paper in PAPERS
        for f in paper_outputs(paper)
        if f.startswith("reports/tables/") and f.endswith(".csv")
    ]


def claim_tables(wildcards=None):
    """The tables the claims read that this workflow produces (a missing one is 'not run')."""
    produced = {f for paper in PAPERS for f in paper_outputs(paper)}
    return sorted({c.table_file for c in lbgap_claims.CLAIMS if c.table_file in produced})


def claim_runs(wildcards):
    """summary.json of the runs behind those tables (the claims' per-seed values)."""
    papers = {c.paper for c in lbgap_claims.CLAIMS if c.table_file in claim_tables()}
    return [f"{run.dir}/summary.json" for run in RUNS if run.paper in papers]


def data_manifests(wildcards):
    return sorted({SPECS[run]["data"].removesuffix(".pt") + ".json" for run in RUNS})


def config_files(wildcards):
    return CONFIG_FILES


def report_outputs():
    """What reproduce_all builds for the review beside the papers' own tables and figures."""
    return [
        *table_views(),
        *rules.claims.output,
        *rules.provenance.output,
        *rules.index.output,
    ]


def other_tables(wildcards=None):
    """Tables that are no paper's product: the quoted literature table (literature.smk)."""
    return list(globals().get("LITERATURE_OUTPUTS", []))


def not_run_figures(paper):
    """A paper's figures that no run of this scale feeds (PNG -> why), listed apart."""
    plan = PLANS[paper]
    skips = {n: e["skip"] for n, e in plan["experiments"].items() if e["skip"]}
    found = {}
    for product in lbgap_papers.products(paper):
        if product.kind == "figure" and not product.inputs(plan):
            why = [r for n, r in skips.items() if product.name.endswith(f"_{n}")]
            found[product.files(paper)[0]] = (why or ["no run of this scale feeds it"])[0]
    return found


INDEX_PRODUCTS = "results/index_products.json"  # written as the Snakefile is read (Snakefile)


def index_products():
    """Per paper (and 'other'): its title and files, as JSON for lbgap.index_page."""
    products = {
        paper: {
            "title": config["papers"][paper].get("title", paper),
            "files": paper_outputs(paper)
            + [f for f in table_views() if f.startswith(f"reports/tables/{paper}_")],
            "not_run": not_run_figures(paper),
        }
        for paper in PAPERS
    }
    if other_tables():
        products["other"] = {"title": "Other tables (quoted, not run)", "files": other_tables()}
    return json.dumps(products)


rule table:
    wildcard_constraints:
        paper=PAPER_PATTERN,
    input:
        products=product_inputs,
        plan=paper_plan,
    output:
        csv=report(
            "reports/tables/{paper}_{name}.csv",
            caption="../report/table.rst",
            category="{paper}",
            subcategory="{name}",
        ),
        md="reports/tables/{paper}_{name}.md",
    log:
        "logs/tables/{paper}_{name}.log",
    message:
        "Table {wildcards.paper}_{wildcards.name}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        what=product_caption,
    shell:
        "python -m lbgap.papers table --paper {wildcards.paper} --name {wildcards.name} "
        "--plan {input.plan} "
        "--csv {output.csv} --md {output.md} > {log} 2>&1"


rule table_view:
    wildcard_constraints:
        paper=PAPER_PATTERN,
    input:
        md=rules.table.output.md,
    output:
        html=report(
            "reports/tables/{paper}_{name}.html",
            caption="../report/table.rst",
            category="{paper}",
            subcategory="{name}",
        ),
    log:
        "logs/tables/{paper}_{name}.html.log",
    message:
        "Table {wildcards.paper}_{wildcards.name} as HTML"
    conda:
        "../../envs/lbgap.yaml"
    params:
        what=product_caption,
    shell:
        "python -m lbgap.htmlview --md {input.md} --html {output.html} > {log} 2>&1"


rule figure:
    wildcard_constraints:
        paper=PAPER_PATTERN,
    input:
        products=product_inputs,
        plan=paper_plan,
    output:
        png=report(
            "reports/figures/{paper}_{name}.png",
            caption="../report/figure.rst",
            category="{paper}",
            subcategory="{name}",
        ),
        pdf=report(
            "reports/figures/{paper}_{name}.pdf",
            caption="../report/figure.rst",
            category="{paper}",
            subcategory="{name}",
        ),
    log:
        "logs/figures/{paper}_{name}.log",
    message:
        "Figure {wildcards.paper}_{wildcards.name}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        what=product_caption,
    shell:
        "python -m lbgap.papers figure --paper {wildcards.paper} --name {wildcards.name} "
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
            "reports/tables/claims.html",
            caption="../report/claims.rst",
            category=OVERVIEW,
            subcategory="claims",
        ),
        csv=report(
            "reports/tables/claims.csv",
            caption="../report/claims.rst",
            category=OVERVIEW,
            subcategory="claims",
        ),
        md="reports/tables/claims.md",
    log:
        "logs/report/claims.log",
    message:
        "Checking the papers' claims on our tables"
    conda:
        "../../envs/lbgap.yaml"
    shell:
        "python -m lbgap.claims --plans {input.plans} --tables {input.tables} "
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
            "reports/tables/provenance.html",
            caption="../report/provenance.rst",
            category=OVERVIEW,
            subcategory="provenance",
        ),
        csv=report(
            "reports/tables/provenance.csv",
            caption="../report/provenance.rst",
            category=OVERVIEW,
            subcategory="provenance",
        ),
        md="reports/tables/provenance.md",
        config=report(
            "reports/config.effective.yaml",
            caption="../report/provenance.rst",
            category=OVERVIEW,
            subcategory="provenance",
        ),
    log:
        "logs/report/provenance.log",
    message:
        "Recording provenance: code, config, software, hardware, data, compute"
    conda:
        "../../envs/lbgap.yaml"
    params:
        repo=workflow.basedir,
        snakemake=SNAKEMAKE_VERSION,
    shell:
        "python -m lbgap.provenance --config {input.config} --plans {input.plans} "
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
        "reports/index.html",
    log:
        "logs/report/index.log",
    message:
        "Writing reports/index.html"
    conda:
        "../../envs/lbgap.yaml"
    params:
        scale=config["scale"],
        extra=[
            "reports/tables/claims.md",
            "reports/tables/claims.html",
            *rules.provenance.output,
        ],
    shell:
        "python -m lbgap.index_page --out {output} --scale {params.scale} "
        "--claims {input.claims} --extra {params.extra} --products {input.products_list} "
        "> {log} 2>&1"
