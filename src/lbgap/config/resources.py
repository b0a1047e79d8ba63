"""What a job asks the scheduler for, from the config, its run and the scale.

One function, `job_resources`, gives the Snakemake resources of every job: the training rule's,
the analyses' (workflow/rules/train.smk, analysis.smk) and the cores the provenance charges
them. `allocation` is what the config asks for, which the spec's world size reads too.
"""

from __future__ import annotations


def allocation(config: dict, paper: str, experiment: str, variant: str | None = None) -> dict:
    """The config's allocation: the scale's, overridden per experiment (e.g. 8 GPUs for
    ImageNet) and per variant (e.g. 4 GPUs for a batch that 8 could not share in whole ghost
    batches). `gpus` and `mem_mb` are per node, `threads` per process, `tasks` the processes
    per node (the GPUs, or `nproc_per_node` on CPU)."""
    scale = config["scale"]
    sc = config["scales"][scale]
    res = {k: sc[k] for k in ("threads", "gpus", "nproc_per_node", "mem_mb", "runtime")}
    res["nodes"] = 1
    exp = config["papers"][paper]["experiments"][experiment]
    res.update(exp.get("resources", {}).get(scale, {}))
    if variant is not None:
        overrides = exp["variants"][variant] or {}
        res.update(overrides.get("resources", {}).get(scale, {}))
    res["nodes"] = max(1, res["nodes"])
    if config["device"] == "cpu":
        res["gpus"] = 0
    res["tasks"] = res["gpus"] if res["gpus"] else res["nproc_per_node"]
    return res


def job_resources(
    config: dict,
    paper: str,
    experiment: str,
    variant: str | None = None,
    *,
    analysis: bool = False,
) -> dict:
    """Snakemake's threads and resources of one job: a training run's, or (`analysis`) one
    analysis of a finished run of the experiment.

    An analysis is one process: the scale's threads and memory, one GPU where the scale has
    GPUs. A training job is one SLURM task per node, since torchrun starts the per-GPU (or
    per-CPU-share) processes itself: `tasks` = nodes, `cpus_per_task` = all the node's threads
    (`threads` too). GPUs are `gpu` (the plugin's `--gpus`) on one node and `gres`
    (`--gres=gpu:N`, per node) on several; `tasks_per_gpu` 0 keeps the plugin from adding
    `--ntasks-per-gpu`. An `mpi` resource makes the plugin's job step run the command in the
    batch script, not in an srun step that a preemption's SIGTERM would kill unsaved; on
    several nodes the launcher's srun starts the per-node torchruns there. On one node it is 0:
    the job step looks only for the key, while sbatch would refuse an MPI job of one task.
    `threads_per_process` and `nproc` (processes per node) are the launcher's options.
    """
    res = allocation(config, paper, experiment, variant)
    if analysis:
        return {
            "threads": res["threads"],
            "gpu": min(res["gpus"], 1),
            "mem_mb": res["mem_mb"],
            "runtime": res["runtime"],
            "cpus_per_task": res["threads"],
        }
    per_node, nodes, gpus = res["tasks"], res["nodes"], res["gpus"]
    return {
        "threads": res["threads"] * per_node,
        "mpi": "srun" if nodes > 1 else 0,
        "gpu": gpus if nodes == 1 else 0,
        "gres": f"gpu:{gpus}" if gpus and nodes > 1 else "",
        "nodes": nodes,
        "tasks": nodes,
        "tasks_per_gpu": 0,
        "cpus_per_task": res["threads"] * per_node,
        "mem_mb": res["mem_mb"],
        "runtime": res["runtime"],
        "threads_per_process": res["threads"],
        "nproc": per_node,
    }
