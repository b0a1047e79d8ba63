"""One function gives every job's resources: training, analyses, the cores provenance charges."""

from __future__ import annotations

import json

import pytest
from paper_fakes import quick_config

from lbgap.config.resources import job_resources
from lbgap.products import provenance


def config_of(threads=1, gpus=0, nproc_per_node=1, nodes=1, device="cuda", variant=None) -> dict:
    """A config of one experiment (p/e) at one scale (s), a variant v with its own resources."""
    scale = {"threads": threads, "gpus": gpus, "nproc_per_node": nproc_per_node,
             "mem_mb": 2000, "runtime": 30}  # fmt: skip
    experiment = {"resources": {"s": {"nodes": nodes}},
                  "variants": {"v": {"resources": {"s": variant or {}}}}}  # fmt: skip
    return {"scale": "s", "device": device, "scales": {"s": scale},
            "papers": {"p": {"experiments": {"e": experiment}}}}  # fmt: skip


def test_cpu_job_is_one_task_with_all_threads():
    job = job_resources(config_of(threads=1, nproc_per_node=2), "p", "e")
    assert job == {
        "threads": 2, "mpi": 0, "gpu": 0, "gres": "", "nodes": 1, "tasks": 1, "tasks_per_gpu": 0,
        "cpus_per_task": 2, "mem_mb": 2000, "runtime": 30, "threads_per_process": 1, "nproc": 2,
    }  # fmt: skip


def test_gpu_jobs_on_one_and_several_nodes():
    one = job_resources(config_of(threads=8, gpus=8), "p", "e")
    assert (one["gpu"], one["gres"], one["tasks"], one["cpus_per_task"]) == (8, "", 1, 64)
    four = job_resources(config_of(threads=8, gpus=8, nodes=4), "p", "e")
    assert (four["gpu"], four["gres"], four["tasks"], four["nodes"]) == (0, "gpu:8", 4, 4)
    # The key, not its value, makes the plugin run the command in the batch script, not in srun.
    assert one["mpi"] == 0 and four["mpi"] == "srun"
    assert one["nproc"] == four["nproc"] == 8  # torchrun's processes per node


def test_a_variant_overrides_and_cpu_devices_have_no_gpus():
    config = config_of(threads=2, gpus=8, variant={"gpus": 4})
    assert job_resources(config, "p", "e")["gpu"] == 8
    assert job_resources(config, "p", "e", "v")["gpu"] == 4
    cpu = job_resources(config_of(threads=2, gpus=8, nproc_per_node=3, device="cpu"), "p", "e")
    assert (cpu["gpu"], cpu["nproc"], cpu["cpus_per_task"]) == (0, 3, 6)


def test_an_analysis_is_one_process_with_at_most_one_gpu():
    for gpus, want in ((0, 0), (8, 1)):
        job = job_resources(config_of(threads=4, gpus=gpus, nodes=2), "p", "e", analysis=True)
        assert job == {"threads": 4, "gpu": want, "mem_mb": 2000, "runtime": 30,
                       "cpus_per_task": 4}  # fmt: skip


def test_provenance_charges_the_training_jobs_cores(tmp_path):
    """CPU-hours are wall x the cores the training job asks for, for its analyses too."""
    config = quick_config()
    config["scales"]["quick"].update(threads=3, nproc_per_node=2)
    run = tmp_path / "results" / "keskar2017" / "F1" / "SB" / "seed0"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"device": "cuda:0", "world_size": 2}))
    cores = job_resources(config, "keskar2017", "F1")["cpus_per_task"]
    assert cores == 6
    assert provenance._allocation(config, "keskar2017", "F1", run) == (cores, 2)
    assert provenance._allocation(config, "keskar2017", "not_an_experiment", None) == (1, 0)


def test_plugin_builds_the_intended_sbatch_call():
    """The SLURM plugin's own submit string for these resources: one task per node."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    class Job:
        threads = 64

        def __init__(self, config: dict) -> None:
            job = job_resources(config, "p", "e")
            self.resources = Resources({k: v for k, v in job.items() if v is not None})

    params = {"run_uuid": "u", "slurm_logfile": "l", "comment_str": "c", "account": "",
              "partition": "", "workdir": ""}  # fmt: skip
    one = Job(config_of(threads=8, gpus=8))
    call = get_submit_command(one, params) + set_gres_string(one)
    assert "--gpus=8" in call and "--cpus-per-task=64" in call and "--nodes=1" in call
    assert "ntasks" not in call and "--gres" not in call
    multi = Job(config_of(threads=8, gpus=8, nodes=2))
    call = get_submit_command(multi, params) + set_gres_string(multi)
    assert "--gres=gpu:8" in call and "--nodes=2" in call and "--gpus" not in call
    assert "--ntasks=2" in call and "ntasks-per-gpu" not in call
    cpu = Job(config_of(threads=1, nproc_per_node=2))
    call = get_submit_command(cpu, params) + set_gres_string(cpu)
    assert "--ntasks=1" in call and "--cpus-per-task=2" in call and "gpu" not in call
