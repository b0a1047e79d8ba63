# ---------------------------------------------------------------- analyses of finished runs
# One job per analysis of a finished run's checkpoint (python -m lbgap.analysis.jobs); file names
# come from lbgap.config.layout, which the tables and figures read too. Settings come from the
# paper's `analysis` section of the config (matrix.analysis), sizes per scale.
# (Its input and param functions are in common.smk.)


rule sharpness:
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
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
        space="full|sub[0-9]+",
        eps="[0-9][0-9.e+-]*",
    group:
        analysis_group("sharpness")
    conda:
        "../../envs/lbgap.yaml"
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        max_iter=lambda wc: analysis_settings(wc, "sharpness")["max_iter"],
        converge=converge_args,
    message:
        "Sharpness phi ({wildcards.space}, eps {wildcards.eps}) of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    shell:
        "python -m lbgap.analysis.jobs sharpness --run {params.run} --data {input.data} "
        "--space {wildcards.space} --eps {wildcards.eps} --max-iter {params.max_iter} "
        "{params.converge} --threads {threads} --out {output} > {log} 2>&1"


rule training_sharpness:
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
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    group:
        analysis_group("training_sharpness")
    conda:
        "../../envs/lbgap.yaml"
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        eps=lambda wc: analysis_settings(wc, "sharpness")["figure_eps"],
        max_iter=lambda wc: analysis_settings(wc, "sharpness")["max_iter"],
    message:
        "Sharpness phi along training of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    shell:
        "python -m lbgap.analysis.jobs training-sharpness --run {params.run} --data {input.data} "
        "--eps {params.eps} --max-iter {params.max_iter} --finals {input.final} "
        "--threads {threads} --out {output} > {log} 2>&1"


rule bn_modes:
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
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    group:
        analysis_group("bn_modes")
    conda:
        "../../envs/lbgap.yaml"
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        eps=lambda wc: analysis_settings(wc, "sharpness")["figure_eps"],
        max_iter=lambda wc: analysis_settings(wc, "sharpness")["max_iter"],
    message:
        "Accuracy and phi in both batch-norm modes of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    shell:
        "python -m lbgap.analysis.jobs bn-modes --run {params.run} --data {input.data} "
        "--eps {params.eps} --max-iter {params.max_iter} --final {input.final} "
        "--threads {threads} --out {output} > {log} 2>&1"


rule hessian:
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
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    group:
        analysis_group("hessian")
    conda:
        "../../envs/lbgap.yaml"
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        samples=lambda wc: analysis_settings(wc, "hessian")["hutchinson_samples"],
        ncv=lambda wc: analysis_settings(wc, "hessian")["lanczos_vectors"],
        tol=lambda wc: analysis_settings(wc, "hessian")["lanczos_tol"],
    message:
        "Hessian top eigenvalue and trace of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    shell:
        "python -m lbgap.analysis.jobs hessian --run {params.run} --data {input.data} "
        "--samples {params.samples} --lanczos-vectors {params.ncv} --tol {params.tol} "
        "--threads {threads} --out {output} > {log} 2>&1"


rule reparametrization:
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
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    group:
        analysis_group("reparametrization")
    conda:
        "../../envs/lbgap.yaml"
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        eps=lambda wc: analysis_settings(wc, "sharpness")["figure_eps"],
        max_iter=lambda wc: analysis_settings(wc, "sharpness")["max_iter"],
        adaptive_eps=lambda wc: analysis_settings(wc, "reparametrization")["adaptive_eps"],
        args=reparametrization_args,
    message:
        "Rescaled weights (Dinh et al.): loss, phi, adaptive sharpness of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    shell:
        "python -m lbgap.analysis.jobs reparametrization --run {params.run} --data {input.data} "
        "--eps {params.eps} --adaptive-eps {params.adaptive_eps} --max-iter {params.max_iter} "
        "{params.args} --threads {threads} --out {output} > {log} 2>&1"


rule parametric:
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
    wildcard_constraints:
        experiment="[^/]+",
    group:
        analysis_group("parametric")
    conda:
        "../../envs/lbgap.yaml"
    threads: lambda wc: analysis_resources(wc)["threads"]
    resources:
        gpu=lambda wc: analysis_resources(wc)["gpu"],
        mem_mb=lambda wc: analysis_resources(wc)["mem_mb"],
        runtime=lambda wc: analysis_resources(wc)["runtime"],
        cpus_per_task=lambda wc: analysis_resources(wc)["threads"],
    params:
        sb=lambda wc, input: os.path.dirname(input.sb),
        lb=lambda wc, input: os.path.dirname(input.lb),
        points=lambda wc: analysis_settings(wc, "parametric")["points"],
    message:
        "Parametric plot data SB -> LB of {wildcards.experiment} seed {wildcards.seed}"
    shell:
        "python -m lbgap.analysis.jobs parametric --run-a {params.sb} --run-b {params.lb} "
        "--data {input.data} --points {params.points} --threads {threads} "
        "--out {output} > {log} 2>&1"
