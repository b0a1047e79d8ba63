# ---------------------------------------------------------------- tables and figures
rule table:
    input:
        product_inputs,
    output:
        csv="reports/tables/{paper}_{name}.csv",
        md="reports/tables/{paper}_{name}.md",
    log:
        "logs/tables/{paper}_{name}.log",
    message:
        "Table {wildcards.paper}_{wildcards.name}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        plan=paper_plan,
    shell:
        "python -m lbgap.tables --paper {wildcards.paper} --name {wildcards.name} --plan {params.plan:q} "
        "--csv {output.csv} --md {output.md} > {log} 2>&1"


rule figure:
    input:
        product_inputs,
    output:
        png="reports/figures/{paper}_{name}.png",
        pdf="reports/figures/{paper}_{name}.pdf",
    log:
        "logs/figures/{paper}_{name}.log",
    message:
        "Figure {wildcards.paper}_{wildcards.name}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        plan=paper_plan,
    shell:
        "python -m lbgap.figures --paper {wildcards.paper} --name {wildcards.name} --plan {params.plan:q} "
        "--png {output.png} --pdf {output.pdf} > {log} 2>&1"
