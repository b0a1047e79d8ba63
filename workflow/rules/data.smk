# ---------------------------------------------------------------- datasets
# (Its input and param functions are in common.smk.)


rule standins:
    output:
        f"{config['data_root']}/{{folder}}/{STANDIN_FILE}",
    log:
        layout.log("standins", "{folder}"),
    wildcard_constraints:
        folder="|".join(re.escape(f) for f in FOLDERS.values()),
    conda:
        "../../envs/lbgap.yaml"
    params:
        root=lambda wc, output: os.path.dirname(os.path.dirname(output[0])),
        dataset=lambda wc: {f: d for d, f in FOLDERS.items()}[wc.folder],
    message:
        "Writing the stand-in of {params.dataset} (real on-disk layout, seeded)"
    shell:
        "python -m lbgap.data.standins --root {params.root} --datasets {params.dataset} > {log} 2>&1"


rule prepare_data:
    input:
        standins_needed,
    output:
        data=layout.prepared("{dataset}", "{scale}"),
        manifest=layout.prepared("{dataset}", "{scale}", "json"),
    log:
        layout.log("prepare_data", "{dataset}_{scale}"),
    benchmark:
        layout.stage_benchmark("prepare_data", "{dataset}_{scale}")
    conda:
        "../../envs/lbgap.yaml"
    params:
        state=prepared_state,
        root=raw_data_root,
        sizes=lambda wc: matrix.size_args(config, wc.scale, wc.dataset),
        flags=lambda wc: matrix.data_flags(config, wc.scale),
    message:
        "Preparing {wildcards.dataset} for scale {wildcards.scale}"
    shell:
        "python -m lbgap.data.prepare --dataset {wildcards.dataset} --root {params.root} "
        "--out {output.data} --manifest {output.manifest} {params.sizes} {params.flags} "
        "> {log} 2>&1"
