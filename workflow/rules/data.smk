# ---------------------------------------------------------------- datasets
rule prepare_data:
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
        "../../envs/data.yaml"
    params:
        root=config["data_root"],
        sizes=lambda wc: matrix.size_args(config, wc.scale),
        flags=lambda wc: matrix.data_flags(config, wc.scale),
    shell:
        "python -m lbgap.data --dataset {wildcards.dataset} --root {params.root} "
        "--out {output.data} --manifest {output.manifest} {params.sizes} {params.flags} "
        "> {log} 2>&1"
