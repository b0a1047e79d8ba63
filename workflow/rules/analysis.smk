# ---------------------------------------------------------------- analyses of finished runs
# One job per analysis of a finished run's checkpoint (python -m lbgap.analyses); file names
# come from lbgap.analysis_files, which the tables and figures read too. Settings come from the
# paper's `analysis` section of the config (matrix.analysis), sizes per scale.
from lbgap import analysis_files

RUN_DIR = "results/{paper}/{experiment}/{variant}/seed{seed}"


ANALYSIS = checked(lambda: {paper: matrix.analysis(config, paper) for paper in PAPERS})


def analysis_settings(wildcards, section):
    return ANALYSIS[wildcards.paper][section]


def run_dir(wildcards):
    return f"results/{wildcards.paper}/{wildcards.experiment}/{wildcards.variant}/seed{wildcards.seed}"


def analysis_resources(wildcards):
    """One process per job: the scale's threads and memory, one GPU where the scale has GPUs."""
    res = matrix.resources(config, wildcards.paper, wildcards.experiment)
    return {**res, "gpu": min(res["gpus"], 1)}


def analysis_group(name):
    """A group per rule, whose jobs the SLURM profile's group-components runs several to a
    submission, one after another: where analyses are short (no GPU: quick, rehearsal) each
    saves its own submission and one of its two Snakemake start-ups. On GPUs each is long and
    keeps a job of its own. Per rule, so no group holds a job and one that needs it: the plugin
    would run those side by side in one CPU's job. Local runs ignore groups."""
    return lambda wildcards: None if analysis_resources(wildcards)["gpu"] else name


def final_sharpness(wildcards):
    """The run's phi of its final weights (Table 3's files), reused by phi along training."""
    eps = analysis_settings(wildcards, "sharpness")["figure_eps"]
    return [analysis_files.sharpness(run_dir(wildcards), "full", eps)]


def converge_args(wildcards):
    """The converged estimate beside the paper's phi, computed in the same job."""
    cfg = analysis_settings(wildcards, "sharpness")
    starts = analysis_files.random_starts(cfg, wildcards.space)
    return (
        f"--converge-iter {cfg['converge_max_iter']} --random-starts {starts} "
        f"--converge-tol {cfg['converge_tol']} --converge-patience {cfg['converge_patience']}"
    )


rule sharpness:
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
        space="full|sub[0-9]+",
        eps="[0-9][0-9.e+-]*",
    input:
        summary=f"{RUN_DIR}/summary.json",
        checkpoint=f"{RUN_DIR}/checkpoint.pt",
        data=train_data,
    output:
        f"{RUN_DIR}/sharpness_{{space}}_eps{{eps}}.json",
    log:
        "logs/sharpness/{paper}/{experiment}/{variant}/seed{seed}_{space}_eps{eps}.log",
    benchmark:
        f"{RUN_DIR}/benchmark_sharpness_{{space}}_eps{{eps}}.tsv"
    message:
        "Sharpness phi ({wildcards.space}, eps {wildcards.eps}) of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        max_iter=lambda wc: analysis_settings(wc, "sharpness")["max_iter"],
        converge=converge_args,
    group: analysis_group("sharpness")
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    shell:
        "python -m lbgap.analyses sharpness --run {params.run} --data {input.data} "
        "--space {wildcards.space} --eps {wildcards.eps} --max-iter {params.max_iter} "
        "{params.converge} --threads {threads} --out {output} > {log} 2>&1"


rule training_sharpness:
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    input:
        summary=f"{RUN_DIR}/summary.json",
        final=final_sharpness,
        data=train_data,
    output:
        f"{RUN_DIR}/sharpness_training.csv",
    log:
        "logs/sharpness/{paper}/{experiment}/{variant}/seed{seed}_training.log",
    benchmark:
        f"{RUN_DIR}/benchmark_sharpness_training.tsv"
    message:
        "Sharpness phi along training of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        eps=lambda wc: analysis_settings(wc, "sharpness")["figure_eps"],
        max_iter=lambda wc: analysis_settings(wc, "sharpness")["max_iter"],
    group: analysis_group("training_sharpness")
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    shell:
        "python -m lbgap.analyses training-sharpness --run {params.run} --data {input.data} "
        "--eps {params.eps} --max-iter {params.max_iter} --finals {input.final} "
        "--threads {threads} --out {output} > {log} 2>&1"


rule bn_modes:
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    input:
        summary=f"{RUN_DIR}/summary.json",
        final=final_sharpness,
        data=train_data,
    output:
        f"{RUN_DIR}/bn_modes.json",
    log:
        "logs/bn_modes/{paper}/{experiment}/{variant}/seed{seed}.log",
    benchmark:
        f"{RUN_DIR}/benchmark_bn_modes.tsv"
    message:
        "Accuracy and phi in both batch-norm modes of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        eps=lambda wc: analysis_settings(wc, "sharpness")["figure_eps"],
        max_iter=lambda wc: analysis_settings(wc, "sharpness")["max_iter"],
    group: analysis_group("bn_modes")
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    shell:
        "python -m lbgap.analyses bn-modes --run {params.run} --data {input.data} "
        "--eps {params.eps} --max-iter {params.max_iter} --final {input.final} "
        "--threads {threads} --out {output} > {log} 2>&1"


rule hessian:
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    input:
        summary=f"{RUN_DIR}/summary.json",
        checkpoint=f"{RUN_DIR}/checkpoint.pt",
        data=train_data,
    output:
        f"{RUN_DIR}/hessian.json",
    log:
        "logs/hessian/{paper}/{experiment}/{variant}/seed{seed}.log",
    benchmark:
        f"{RUN_DIR}/benchmark_hessian.tsv"
    message:
        "Hessian top eigenvalue and trace of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        samples=lambda wc: analysis_settings(wc, "hessian")["hutchinson_samples"],
        ncv=lambda wc: analysis_settings(wc, "hessian")["lanczos_vectors"],
        tol=lambda wc: analysis_settings(wc, "hessian")["lanczos_tol"],
    group: analysis_group("hessian")
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    shell:
        "python -m lbgap.analyses hessian --run {params.run} --data {input.data} "
        "--samples {params.samples} --lanczos-vectors {params.ncv} --tol {params.tol} "
        "--threads {threads} --out {output} > {log} 2>&1"


def reparametrization_args(wildcards):
    """The rescaling factors and, with eigenvalues on, the Hessian analysis's Lanczos settings.
    alpha = 1's phi and eigenvalue are Table 3's and the Hessian table's: the tables read them
    from those jobs' files, so this job starts as soon as the run has finished."""
    cfg = analysis_settings(wildcards, "reparametrization")
    args = "--alphas " + " ".join(f"{a:g}" for a in cfg["alphas"])
    if cfg["eigenvalue"]:
        hess = analysis_settings(wildcards, "hessian")
        args += (
            f" --eigenvalue --lanczos-vectors {hess['lanczos_vectors']}"
            f" --tol {hess['lanczos_tol']}"
        )
    return args


rule reparametrization:
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    input:
        summary=f"{RUN_DIR}/summary.json",
        checkpoint=f"{RUN_DIR}/checkpoint.pt",
        data=train_data,
    output:
        f"{RUN_DIR}/{analysis_files.REPARAMETRIZATION}",
    log:
        "logs/reparametrization/{paper}/{experiment}/{variant}/seed{seed}.log",
    benchmark:
        f"{RUN_DIR}/benchmark_reparametrization.tsv"
    message:
        "Rescaled weights (Dinh et al.): loss, phi, adaptive sharpness of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        eps=lambda wc: analysis_settings(wc, "sharpness")["figure_eps"],
        max_iter=lambda wc: analysis_settings(wc, "sharpness")["max_iter"],
        adaptive_eps=lambda wc: analysis_settings(wc, "reparametrization")["adaptive_eps"],
        args=reparametrization_args,
    group: analysis_group("reparametrization")
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    shell:
        "python -m lbgap.analyses reparametrization --run {params.run} --data {input.data} "
        "--eps {params.eps} --adaptive-eps {params.adaptive_eps} --max-iter {params.max_iter} "
        "{params.args} --threads {threads} --out {output} > {log} 2>&1"


def parametric_run(variant):
    """The SB (alpha = 0) or LB (alpha = 1) run of a seed pairing."""
    return lambda wc: f"results/{wc.paper}/{wc.experiment}/{variant}/seed{wc.seed}/summary.json"


def parametric_data(wildcards):
    return SPECS[matrix.Run(wildcards.paper, wildcards.experiment, "SB", int(wildcards.seed))][
        "data"
    ]


rule parametric:
    wildcard_constraints:
        experiment="[^/]+",
    input:
        sb=parametric_run("SB"),
        lb=parametric_run("LB"),
        data=parametric_data,
    output:
        "results/{paper}/{experiment}/parametric_seed{seed}.csv",
    log:
        "logs/parametric/{paper}/{experiment}/seed{seed}.log",
    benchmark:
        "results/{paper}/{experiment}/benchmark_parametric_seed{seed}.tsv"
    message:
        "Parametric plot data SB -> LB of {wildcards.experiment} seed {wildcards.seed}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        sb=lambda wc, input: os.path.dirname(input.sb),
        lb=lambda wc, input: os.path.dirname(input.lb),
        points=lambda wc: analysis_settings(wc, "parametric")["points"],
    group: analysis_group("parametric")
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    shell:
        "python -m lbgap.analyses parametric --run-a {params.sb} --run-b {params.lb} "
        "--data {input.data} --points {params.points} --threads {threads} "
        "--out {output} > {log} 2>&1"
