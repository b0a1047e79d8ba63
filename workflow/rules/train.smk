# ---------------------------------------------------------------- training
rule train:
    input:
        data=train_data,
    output:
        summary="results/{paper}/{experiment}/{variant}/seed{seed}/summary.json",
        metrics="results/{paper}/{experiment}/{variant}/seed{seed}/metrics.csv",
        steps="results/{paper}/{experiment}/{variant}/seed{seed}/steps.csv",
        checkpoint="results/{paper}/{experiment}/{variant}/seed{seed}/checkpoint.pt",
    log:
        "logs/train/{paper}/{experiment}/{variant}/seed{seed}.log",
    benchmark:
        "results/{paper}/{experiment}/{variant}/seed{seed}/benchmark.tsv"
    message:
        "Training {wildcards.paper} {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    conda:
        "../../envs/lbgap.yaml"
    params:
        spec=spec_json,
        out=lambda wc, output: os.path.dirname(output.summary),
        threads=lambda wc: run_resources(wc)["threads"],
    threads: lambda wc: run_resources(wc)["threads"] * run_resources(wc)["tasks"]
    retries: config["retries"]
    resources:
        gpu=lambda wc: run_resources(wc)["gpus"],
        tasks=lambda wc: run_resources(wc)["tasks"],
        nodes=lambda wc: run_resources(wc)["nodes"],
        mem_mb=lambda wc: run_resources(wc)["mem_mb"],
        runtime=lambda wc: run_resources(wc)["runtime"],
        cpus_per_task=lambda wc: run_resources(wc)["threads"] * run_resources(wc)["tasks"],
    shell:
        "python -m lbgap.launch --nproc-per-node {resources.tasks} --nodes {resources.nodes} "
        "--threads {params.threads} -- --spec {params.spec:q} --out {params.out} > {log} 2>&1"
