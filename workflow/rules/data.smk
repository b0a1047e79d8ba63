# ---------------------------------------------------------------- datasets
import re

from lbgap.datasets import FOLDERS, STANDIN_FILE, prepared_mismatch


_DAMAGED_SAID = set()


def prepared_state(wildcards):
    """"damaged" when the prepared file no longer matches its recorded SHA-256 (a truncated
    copy, a disk error), else "intact": a change of this param makes Snakemake prepare the
    dataset again (a dry run only reports it); nothing is deleted while the DAG is built.
    (From the wildcards, not `output`: Snakemake ignores params derived from files.)"""
    path = f"data/prepared/{wildcards.dataset}_{wildcards.scale}.pt"
    problem = prepared_mismatch(path) if os.path.exists(path) else None
    if problem and path not in _DAMAGED_SAID:
        _DAMAGED_SAID.add(path)
        print(f"lbgap: {problem}; preparing it again", file=sys.stderr)
    return "damaged" if problem else "intact"


def standin_marker(dataset):
    return f"{config['data_root']}/{FOLDERS[dataset]}/{STANDIN_FILE}"


def standins_needed(wildcards):
    """At a scale that runs on stand-ins, the stand-in is written first."""
    return [standin_marker(wildcards.dataset)] if config["scales"][wildcards.scale]["standins"] else []


rule standins:
    wildcard_constraints:
        folder="|".join(re.escape(f) for f in FOLDERS.values()),
    output:
        f"{config['data_root']}/{{folder}}/{STANDIN_FILE}",
    log:
        "logs/standins/{folder}.log",
    message:
        "Writing the stand-in of {params.dataset} (real on-disk layout, seeded)"
    conda:
        "../../envs/lbgap.yaml"
    params:
        root=config["data_root"],
        dataset=lambda wc: {f: d for d, f in FOLDERS.items()}[wc.folder],
    shell:
        "python -m lbgap.standins --root {params.root} --datasets {params.dataset} > {log} 2>&1"


rule prepare_data:
    input:
        standins_needed,
    output:
        data="data/prepared/{dataset}_{scale}.pt",
        manifest="data/prepared/{dataset}_{scale}.json",
    log:
        "logs/prepare_data/{dataset}_{scale}.log",
    benchmark:
        "results/benchmarks/prepare_data/{dataset}_{scale}.tsv"
    message:
        "Preparing {wildcards.dataset} for scale {wildcards.scale}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        state=prepared_state,
        root=config["data_root"],
        sizes=lambda wc: matrix.size_args(config, wc.scale, wc.dataset),
        flags=lambda wc: matrix.data_flags(config, wc.scale),
    shell:
        "python -m lbgap.data --dataset {wildcards.dataset} --root {params.root} "
        "--out {output.data} --manifest {output.manifest} {params.sizes} {params.flags} "
        "> {log} 2>&1"
