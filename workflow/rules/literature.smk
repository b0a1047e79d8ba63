# ---------------------------------------------------------------- quoted literature tables
# Not a paper of the matrix: numbers quoted from src/lbgap/products/papers/reference.yaml, no runs.
from pathlib import Path

LITERATURE_REFERENCE = str(Path(workflow.basedir, "src/lbgap/products/papers/reference.yaml"))
LITERATURE_OUTPUTS = [
    layout.report_table("literature_imagenet_records", ext) for ext in ("csv", "md")
]


localrules:
    literature_table,


# The generic table rule's pattern {paper}_{name} matches these files too.
ruleorder: literature_table > table


rule literature_table:
    input:
        reference=LITERATURE_REFERENCE,
    output:
        csv=report(
            LITERATURE_OUTPUTS[0],
            caption="../report/literature.rst",
            category="Literature",
            subcategory="imagenet_records",
        ),
        md=LITERATURE_OUTPUTS[1],
    log:
        layout.log("tables", "literature_imagenet_records"),
    conda:
        "../../envs/lbgap.yaml"
    message:
        "Table literature_imagenet_records (quoted, not reproduced)"
    shell:
        "python -m lbgap.products.literature --reference {input.reference:q} --csv {output.csv} "
        "--md {output.md} > {log} 2>&1"
