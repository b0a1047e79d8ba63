# ---------------------------------------------------------------- analyses of finished runs
# One job per analysis of a finished run's checkpoint (python -m lbgap.analysis.jobs); file names
# come from lbgap.config.layout, which the tables and figures read too. Settings come from the
# paper's `analysis` section of the config (matrix.analysis), sizes per scale.
# (Its input and param functions are in common.smk.)


rule sharpness:
    input:
        summary=layout.summary(RUN_DIR),
        checkpoint=layout.checkpoint(RUN_DIR),
        data=train_data,
    output:
        layout.sharpness(RUN_DIR, "{space}", "{eps}"),
    log:
        layout.run_log("sharpness", RUN_DIR, "_{space}_eps{eps}"),
    benchmark:
        layout.benchmark(RUN_DIR, "sharpness_{space}_eps{eps}")
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
        space="full|sub[0-9]+",
        eps="[0-9][0-9.e+-]*",
    group:
        analysis_group("sharpness")
    conda:
        "../../envs/lbgap.yaml"
    threads: ANALYSIS_THREADS
    resources:
        **ANALYSIS_RESOURCES,
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        max_iter=phi_max_iter,
        converge=converge_args,
    message:
        "Sharpness phi ({wildcards.space}, eps {wildcards.eps}) of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    shell:
        "python -m lbgap.analysis.jobs sharpness --run {params.run} --data {input.data} "
        "--space {wildcards.space} --eps {wildcards.eps} --max-iter {params.max_iter} "
        "{params.converge} --threads {threads} --out {output} > {log} 2>&1"


rule training_sharpness:
    input:
        summary=layout.summary(RUN_DIR),
        final=final_sharpness,
        data=train_data,
    output:
        layout.training_sharpness(RUN_DIR),
    log:
        layout.run_log("sharpness", RUN_DIR, "_training"),
    benchmark:
        layout.benchmark(RUN_DIR, "sharpness_training")
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    group:
        analysis_group("training_sharpness")
    conda:
        "../../envs/lbgap.yaml"
    threads: ANALYSIS_THREADS
    resources:
        **ANALYSIS_RESOURCES,
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        eps=lambda wc: analysis_settings(wc, "sharpness")["figure_eps"],
        max_iter=phi_max_iter,
    message:
        "Sharpness phi along training of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    shell:
        "python -m lbgap.analysis.jobs training-sharpness --run {params.run} --data {input.data} "
        "--eps {params.eps} --max-iter {params.max_iter} --finals {input.final} "
        "--threads {threads} --out {output} > {log} 2>&1"


rule bn_modes:
    input:
        summary=layout.summary(RUN_DIR),
        final=final_sharpness,
        data=train_data,
    output:
        layout.bn_modes(RUN_DIR),
    log:
        layout.run_log("bn_modes", RUN_DIR),
    benchmark:
        layout.benchmark(RUN_DIR, "bn_modes")
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    group:
        analysis_group("bn_modes")
    conda:
        "../../envs/lbgap.yaml"
    threads: ANALYSIS_THREADS
    resources:
        **ANALYSIS_RESOURCES,
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        eps=lambda wc: analysis_settings(wc, "sharpness")["figure_eps"],
        max_iter=phi_max_iter,
    message:
        "Accuracy and phi in both batch-norm modes of {wildcards.experiment} {wildcards.variant} seed {wildcards.seed}"
    shell:
        "python -m lbgap.analysis.jobs bn-modes --run {params.run} --data {input.data} "
        "--eps {params.eps} --max-iter {params.max_iter} --final {input.final} "
        "--threads {threads} --out {output} > {log} 2>&1"


rule hessian:
    input:
        summary=layout.summary(RUN_DIR),
        checkpoint=layout.checkpoint(RUN_DIR),
        data=train_data,
    output:
        layout.hessian(RUN_DIR),
    log:
        layout.run_log("hessian", RUN_DIR),
    benchmark:
        layout.benchmark(RUN_DIR, "hessian")
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    group:
        analysis_group("hessian")
    conda:
        "../../envs/lbgap.yaml"
    threads: ANALYSIS_THREADS
    resources:
        **ANALYSIS_RESOURCES,
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
        summary=layout.summary(RUN_DIR),
        checkpoint=layout.checkpoint(RUN_DIR),
        data=train_data,
    output:
        layout.reparametrization(RUN_DIR),
    log:
        layout.run_log("reparametrization", RUN_DIR),
    benchmark:
        layout.benchmark(RUN_DIR, "reparametrization")
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    group:
        analysis_group("reparametrization")
    conda:
        "../../envs/lbgap.yaml"
    threads: ANALYSIS_THREADS
    resources:
        **ANALYSIS_RESOURCES,
    params:
        run=lambda wc, input: os.path.dirname(input.summary),
        eps=lambda wc: analysis_settings(wc, "sharpness")["figure_eps"],
        max_iter=phi_max_iter,
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
        layout.parametric("{paper}", "{experiment}", "{seed}"),
    log:
        layout.parametric_log("{paper}", "{experiment}", "{seed}"),
    benchmark:
        layout.benchmark(EXPERIMENT_DIR, "parametric_seed{seed}")
    wildcard_constraints:
        experiment="[^/]+",
    group:
        analysis_group("parametric")
    conda:
        "../../envs/lbgap.yaml"
    threads: ANALYSIS_THREADS
    resources:
        **ANALYSIS_RESOURCES,
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
