# ---------------------------------------------------------------- training
from lbgap.training.launch import job_resources


rule train:
    input:
        spec=run_spec,
        data=train_data,
        warm_source=warm_source,
    output:
        summary="results/{paper}/{experiment}/{variant}/seed{seed}/summary.json",
        metrics="results/{paper}/{experiment}/{variant}/seed{seed}/metrics.csv",
        steps="results/{paper}/{experiment}/{variant}/seed{seed}/steps.csv",
        checkpoint="results/{paper}/{experiment}/{variant}/seed{seed}/checkpoint.pt",
    log:
        "logs/train/{paper}/{experiment}/{variant}/seed{seed}.log",
    benchmark:
        "results/{paper}/{experiment}/{variant}/seed{seed}/benchmark.tsv"
    retries: config["retries"]
    conda:
        "../../envs/lbgap.yaml"
    threads: lambda wc: run_resources(wc)["threads"] * run_resources(wc)["tasks"]
    # One SLURM task (one torchrun) per node; several nodes: `mpi`, so that the launcher's srun
    # runs in the batch script (see lbgap.training.launch.job_resources).
    resources:
        gpu=lambda wc: job_resources(run_resources(wc))["gpu"],
        gres=lambda wc: job_resources(run_resources(wc))["gres"],
        mpi=lambda wc: job_resources(run_resources(wc))["mpi"],
        tasks=lambda wc: job_resources(run_resources(wc))["tasks"],
        tasks_per_gpu=lambda wc: job_resources(run_resources(wc))["tasks_per_gpu"],
        nodes=lambda wc: job_resources(run_resources(wc))["nodes"],
        mem_mb=lambda wc: job_resources(run_resources(wc))["mem_mb"],
        runtime=lambda wc: job_resources(run_resources(wc))["runtime"],
        cpus_per_task=lambda wc: job_resources(run_resources(wc))["cpus_per_task"],
        threads_per_process=lambda wc: run_resources(wc)["threads"],
        checkpoint_minutes=str(config["checkpoint_minutes"]),
        tensorboard=int(config["tensorboard"]),
    # spec.json: what the run computes (a change reruns it). How it is looked after (threads,
    # checkpoint interval, retries, TensorBoard) comes as resources, so changing it reruns nothing.
    params:
        out=lambda wc, output: os.path.dirname(output.summary),
        nproc=lambda wc: run_resources(wc)["tasks"],
    message:
        "Training {wildcards.paper} {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    # exec: SLURM's SIGTERM reaches torchrun and the training processes, not a waiting shell.
    # Snakemake deletes {log} before a retry; a hard link to `.attempts` beside it (restarted
    # with the run, kept while a state.pt says it resumes) keeps every attempt's lines in it
    # (`: >>` creates it without touching the time of its last write, the previous attempt's
    # end). Snakemake's benchmark has the attempt that succeeded; the launcher puts the earlier
    # ones' times beside it, from their start lines in that log.
    shell:
        "if [ ! -e {params.out}/state.pt ]; then : > {log}.attempts; fi; "
        ": >> {log}.attempts && ln -f {log}.attempts {log} && "
        "exec python -m lbgap.training.launch --log {log} "
        "--earlier-attempts {params.out}/benchmark_earlier_attempts.tsv "
        "--nproc-per-node {params.nproc} --nodes {resources.nodes} "
        "--threads {resources.threads_per_process} -- --spec {input.spec} --out {params.out} "
        "--checkpoint-minutes {resources.checkpoint_minutes} --tensorboard {resources.tensorboard} "
        ">> {log} 2>&1"
