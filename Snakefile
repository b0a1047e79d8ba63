# lbgap: large-batch training and the generalization gap, reproduced end to end.
# A table of contents: configuration, the stages' rule files, and the targets.

import time

from snakemake.utils import min_version

min_version("9.0")

RUN_STARTED = []  # when onstart ran: the run's wall time, for the summary


# lbgap importable; a YAML syntax error in config.yaml named by file, line and column.
include: "workflow/rules/setup.smk"


configfile: CONFIG_YAML


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/literature.smk"


# The overview page's list of products, a file like the specs and plans (common.smk).
write_if_changed(INDEX_PRODUCTS, index_products() + "\n")


rule reproduce_all:
    default_target: True
    input:
        [paper_outputs(paper) for paper in PAPERS],
        LITERATURE_OUTPUTS,
        report_outputs(),


rule keskar2017:
    input:
        paper_outputs("keskar2017"),


rule hoffer2017:
    input:
        paper_outputs("hoffer2017"),


rule goyal2017:
    input:
        paper_outputs("goyal2017"),


rule smith2018:
    input:
        paper_outputs("smith2018"),


onstart:
    from lbgap.config import slurm_status  # a SLURM run that could not see its jobs stops here

    slurm_status.check(workflow)
    RUN_STARTED.append(time.monotonic())
    print(f"lbgap: scale={config['scale']}, {plural(len(RUNS), 'training run')} in the matrix")


# After a run that built the review (reproduce_all, not a single paper or file; never a dry
# run, which calls no handler): the verdicts, headline numbers, compute and where to look.
onsuccess:
    if any(job.rule.name == "index" for job in workflow.dag.jobs):
        print(
            lbgap_summary.text(
                rules.claims.output.csv,
                rules.provenance.output.csv,
                rules.index.output[0],
                layout.REPORT_HTML,  # `make report` and `make reproduce` build it here
                time.monotonic() - RUN_STARTED[0] if RUN_STARTED else None,
                report_pending="--report-after-run" in sys.argv,
                shown_from=LAUNCH_DIR,
            )
        )
