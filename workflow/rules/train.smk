# ---------------------------------------------------------------- training


rule train:
    input:
        spec=run_spec,
        data=train_data,
        warm_source=warm_source,
    output:
        summary=layout.summary(RUN_DIR),
        metrics=layout.metrics(RUN_DIR),
        steps=layout.steps(RUN_DIR),
        checkpoint=layout.checkpoint(RUN_DIR),
    log:
        layout.run_log("train", RUN_DIR),
    benchmark:
        layout.benchmark(RUN_DIR)
    retries: config["retries"]
    conda:
        "../../envs/lbgap.yaml"
    threads: TRAIN_THREADS
    # One SLURM task (one torchrun) per node; several nodes: `mpi`, so that the launcher's srun
    # runs in the batch script (see lbgap.config.resources.job_resources).
    resources:
        **TRAIN_RESOURCES,
        checkpoint_minutes=str(config["checkpoint_minutes"]),
        tensorboard=int(config["tensorboard"]),
    # spec.json: what the run computes (a change reruns it). How it is looked after (threads,
    # checkpoint interval, retries, TensorBoard) comes as resources, so changing it reruns nothing.
    params:
        out=lambda wc, output: os.path.dirname(output.summary),
        nproc=resource_of(run_resources, "nproc"),
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
        f"--earlier-attempts {{params.out}}/{layout.EARLIER_ATTEMPTS} "
        "--nproc-per-node {params.nproc} --nodes {resources.nodes} "
        "--threads {resources.threads_per_process} -- --spec {input.spec} --out {params.out} "
        "--checkpoint-minutes {resources.checkpoint_minutes} --tensorboard {resources.tensorboard} "
        ">> {log} 2>&1"
