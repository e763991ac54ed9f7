"""Training checkpoints: atomic, complete, checked on load, never pickled.

A checkpoint is a folder ``<out>/checkpoints/step-NNNNNNNN/``::

    model.safetensors       the model's state_dict
    optimizer.safetensors   every tensor of the optimiser state, flattened: "<param index>.<name>"
    trainer.json            optimiser param groups and non-tensor state, step, data position,
                            schedule, early-stopping counters, TrainConfig, run config, world size
    rank-00000.safetensors  per process: torch CPU RNG state (a uint8 tensor), CUDA RNG state,
    rank-00000.json           numpy MT19937 key, carried states (truncated BPTT); the JSON holds
                              Python's ``random`` state and the shape of the carried state
    manifest.json           the SHA-256 and size of every other file (written last)

and ``<out>/checkpoints/latest`` is a one-line text file naming the newest complete folder.

Writing: everything goes into ``.step-NNNNNNNN.tmp/`` (each process writes its own rank
files, rank 0 the rest), is fsync'ed, and the folder is renamed into place; only then is
``latest`` replaced (write to a temporary file, fsync, rename) and the oldest folders
beyond ``keep_last`` removed. A crash at any moment leaves ``latest`` naming a complete
checkpoint. Leftover ``.tmp`` folders are ignored and swept by the next save.

Loading verifies before it touches anything: the manifest's hashes and sizes, the
safetensors headers, JSON syntax, the format version, that the TrainConfig and run
config agree with the current run (except keys in ``RESUMABLE_CHANGES``), the world size,
and every parameter name and shape. Any failure is one :class:`CheckpointError` line.
Nothing is unpickled: ``torch.load`` is never called.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import config as config_io
from ..errors import CheckpointError
from ..io import atomic_dir, atomic_write_text, load_tensors, replace_dir
from ..pretrained import load_state_strict
from . import distributed

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

FORMAT = "lmlab-train-checkpoint"
# [train] keys a resumed run may change: they steer the loop, not the optimisation path
# (schedule_steps does change it, but only when set on purpose; see restore_horizon)
RESUMABLE_CHANGES = frozenset({
    "max_steps", "eval_every", "patience", "save_best", "checkpoint_every", "checkpoint_minutes", "keep_last",
    "log_every", "progress", "tensorboard", "plot", "mfu", "device", "compile", "threads", "schedule_steps",
})
# schedules whose learning rate depends on the horizon (total_steps)
_HORIZON_SCHEDULES = ("linear", "cosine")

VERSION = 1
LATEST = "latest"
_NAME = re.compile(r"^step-(\d{8,})$")


def folder_name(step: int) -> str:
    return f"step-{step:08d}"


# --------------------------------------------------------------------------- small pieces


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - directories on some platforms
        pass
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    # clone: tied weights share storage, which safetensors refuses
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, str(path))


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: missing {path.name}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None


def flatten_state(state: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A carried state as a JSON spec, its tensors added to ``tensors`` under ``prefix``."""
    if state is None:
        return {"kind": "none"}
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state
        return {"kind": "tensor", "key": prefix}
    if isinstance(state, (list, tuple)):
        return {"kind": type(state).__name__,
                "items": [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(state)]}
    if isinstance(state, dict):
        return {"kind": "dict", "items": {str(k): flatten_state(v, f"{prefix}.{k}", tensors)
                                          for k, v in state.items()}}
    raise CheckpointError(f"cannot checkpoint a carried state of type {type(state).__name__}")


def unflatten_state(spec: Any, tensors: dict[str, torch.Tensor], device: torch.device, where: str) -> Any:
    try:
        kind = spec["kind"]
        if kind == "none":
            return None
        if kind == "tensor":
            return tensors[spec["key"]].to(device)
        if kind in ("list", "tuple"):
            items = [unflatten_state(v, tensors, device, where) for v in spec["items"]]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            return {k: unflatten_state(v, tensors, device, where) for k, v in spec["items"].items()}
    except (KeyError, TypeError, AttributeError):
        pass
    raise CheckpointError(f"{where}: carried state does not match its tensors")


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state as (tensors for safetensors, JSON-able rest)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            key = f"{index}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value
            elif value is None or isinstance(value, (bool, int, float, str)):
                scalars[key] = value
            else:
                raise CheckpointError(f"optimizer state {key!r} has unsupported type {type(value).__name__}")
    groups = json.loads(json.dumps(state["param_groups"]))  # tuples -> lists; fails loudly if not JSON-able
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict, where: str) -> dict:
    try:
        groups = meta["param_groups"]
        for group in groups:
            if "betas" in group and isinstance(group["betas"], list):
                group["betas"] = tuple(group["betas"])
        state: dict[int, dict[str, Any]] = {}
        for key, value in list(tensors.items()) + list(meta["scalars"].items()):
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CheckpointError(f"{where}: optimizer state is malformed") from None
    return {"state": state, "param_groups": groups}


def _rng_state(device: torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["rng.torch_cuda"] = torch.cuda.get_rng_state(device)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    meta = {"numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
            "python": {"version": version, "state": list(internal), "gauss_next": gauss_next}}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict, device: torch.device, where: str) -> None:
    try:
        torch.set_rng_state(tensors["rng.torch_cpu"])
        if device.type == "cuda" and "rng.torch_cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.torch_cuda"], device)
        n = meta["numpy"]
        np.random.set_state((n["kind"], tensors["rng.numpy_keys"].numpy().astype(np.uint32), n["pos"],
                             n["has_gauss"], n["cached"]))
        p = meta["python"]
        random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{where}: random-number-generator state is malformed ({err})") from None


# --------------------------------------------------------------------------- save


def refuse_to_clobber(root: Path) -> None:
    """A fresh run must not silently mix with an earlier run's checkpoints."""
    if (root / LATEST).exists():
        raise CheckpointError(
            f"{root.parent} already holds a run (checkpoints/latest); pass --resume to continue it "
            "or choose another --out"
        )


def latest_path(root: Path) -> Path | None:
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    return root / pointer.read_text(encoding="utf-8").strip()


def _rank_file(rank: int) -> str:
    return f"rank-{rank:05d}"


def save(trainer: Trainer) -> Path:
    """Write the trainer's complete state; every process must call it (collective)."""
    root = trainer.checkpoint_dir()
    rank, world = trainer.dist.rank, trainer.dist.world
    name = folder_name(trainer.step)
    final = root / name
    tmp = root / f".{name}.tmp"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".step-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    distributed.barrier()
    failure = None
    try:
        _write_rank_files(trainer, tmp, rank)
        if rank == 0:
            _write_shared_files(trainer, tmp, world)
    except BaseException as err:  # noqa: BLE001 - re-raised after the collective, so no process hangs
        failure = err
    ok = torch.tensor([0.0 if failure else 1.0], dtype=torch.float64,
                      device=trainer.device if trainer.device.type == "cuda" else "cpu")
    distributed.all_reduce_min(ok)
    if failure is not None:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        raise failure
    if float(ok) < 1.0:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{final}: another process failed while writing its part")
    if rank == 0:
        _write_manifest(tmp)
        _publish(tmp, final, root)
        _prune(root, trainer.config.keep_last, keep=name)
    distributed.barrier()
    return final


def _write_rank_files(trainer: Trainer, tmp: Path, rank: int) -> None:
    tensors, rng_meta = _rng_state(trainer.device)
    carried_spec = {str(micro): flatten_state(state, f"carried.{micro}", tensors)
                    for micro, state in sorted(trainer.carried.items())}
    _save_tensors(tmp / f"{_rank_file(rank)}.safetensors", tensors)
    (tmp / f"{_rank_file(rank)}.json").write_text(
        json.dumps({"rng": rng_meta, "carried": carried_spec}) + "\n", encoding="utf-8")


def _write_shared_files(trainer: Trainer, tmp: Path, world: int) -> None:
    _save_tensors(tmp / "model.safetensors", trainer.model.state_dict())
    opt_tensors, opt_meta = flatten_optimizer(trainer.optimizer)
    _save_tensors(tmp / "optimizer.safetensors", opt_tensors)
    state = {
        "format": FORMAT,
        "version": VERSION,
        "step": trainer.step,
        "tokens_seen": trainer.tokens_seen,
        "best_eval_loss": trainer.best_eval_loss,
        "bad_evals": trainer.bad_evals,
        "stopped_early": trainer.stopped_early,
        "last_eval": trainer.last_eval,
        "last_loss": trainer.last_loss if trainer.last_loss == trainer.last_loss else None,
        "world": world,
        "stateful": trainer.stateful,
        "schedule": {"name": trainer.schedule.name, "total_steps": trainer.schedule.total_steps,
                     "lr_next": trainer.schedule.lr_at(trainer.step + 1)},
        "optimizer": opt_meta,
        "train_config": config_io.to_dict(trainer.config),
        "run_config": trainer.run_config,
    }
    (tmp / "trainer.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")


def _write_manifest(tmp: Path) -> None:
    files = {p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size}
             for p in sorted(tmp.iterdir()) if p.is_file()}
    (tmp / "manifest.json").write_text(json.dumps({"format": FORMAT, "files": files}, indent=1) + "\n",
                                       encoding="utf-8")
    for p in tmp.iterdir():
        _fsync_path(p)
    _fsync_path(tmp)


def _publish(tmp: Path, final: Path, root: Path) -> None:
    replace_dir(tmp, final)  # the same step may be saved twice (e.g. early stop at a checkpoint step)
    atomic_write_text(root / LATEST, final.name + "\n")


def _prune(root: Path, keep_last: int, keep: str) -> None:
    steps = sorted(p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name))
    for old in steps[: max(len(steps) - keep_last, 0)]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def save_best(trainer: Trainer) -> Path:
    """``<out>/best/``: the weights with the lowest evaluation loss so far (rank 0 only)."""
    folder = trainer.out_dir / "best"
    with atomic_dir(folder) as tmp:
        _save_tensors(tmp / "model.safetensors", trainer.model.state_dict())
        (tmp / "best.json").write_text(json.dumps({"step": trainer.step, **trainer.last_eval}) + "\n")
    return folder


# --------------------------------------------------------------------------- load


def resolve(root: Path, path: Path | None) -> Path:
    """The checkpoint folder to load: ``path`` itself, or the one ``latest`` names."""
    if path is not None:
        if not path.is_dir():
            raise CheckpointError(f"checkpoint folder not found: {path}")
        return path
    pointer = root / LATEST
    if not pointer.is_file():
        raise CheckpointError(f"nothing to resume: no {pointer}")
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise CheckpointError(f"{pointer}: not a checkpoint name") from None
    if not _NAME.match(name):
        raise CheckpointError(f"{pointer}: {name[:40]!r} is not a checkpoint name")
    folder = root / name
    if not folder.is_dir():
        raise CheckpointError(f"{pointer} names {name}, which does not exist")
    return folder


def verify(folder: Path) -> dict:
    """Check the manifest (every file present, same size, same SHA-256); return trainer.json."""
    manifest = _read_json(folder / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(
            manifest.get("files"), dict):
        raise CheckpointError(f"{folder}/manifest.json: not an lmlab training checkpoint manifest")
    for name in ("model.safetensors", "optimizer.safetensors", "trainer.json"):
        if name not in manifest["files"]:
            raise CheckpointError(f"{folder}/manifest.json does not list {name}")
    for name, info in manifest["files"].items():
        path = folder / name
        if "/" in name or not path.is_file():
            raise CheckpointError(f"{folder}: missing {name}")
        try:
            size, digest = int(info["bytes"]), str(info["sha256"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{folder}/manifest.json: bad entry for {name}") from None
        if path.stat().st_size != size:
            raise CheckpointError(f"{path}: {path.stat().st_size} bytes, the manifest says {size} (truncated?)")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path}: contents changed since it was written (SHA-256 mismatch)")
    state = _read_json(folder / "trainer.json")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{folder}/trainer.json: not an lmlab training checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{folder}/trainer.json: format version {state.get('version')!r}, "
                              f"this lmlab reads {VERSION}")
    return state


def _compare(saved: Any, current: Any, prefix: str, folder: Path, skip: frozenset = frozenset()) -> None:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            if key in skip:
                continue
            where = f"{prefix}.{key}" if prefix else key
            if key not in saved or key not in current:
                raise CheckpointError(f"{folder}: config mismatch at {where!r} (present in only one of "
                                      "the checkpoint and this run)")
            _compare(saved[key], current[key], where, folder)
        return
    if json.loads(json.dumps(saved)) != json.loads(json.dumps(current)):
        raise CheckpointError(f"{folder}: config mismatch: {prefix} is {saved!r} in the checkpoint, "
                              f"{current!r} in this run")


def saved_horizon(state: dict) -> int:
    """The schedule horizon a checkpoint was trained with (older checkpoints: from its TrainConfig)."""
    recorded = (state.get("schedule") or {}).get("total_steps")
    if isinstance(recorded, int) and recorded > 0:
        return recorded
    config = state.get("train_config") or {}
    return int(config.get("schedule_steps") or config.get("max_steps") or 0)


def restore_horizon(trainer: Trainer, state: dict, folder: Path):
    """(the schedule a resumed run continues with, a one-line notice or None).

    The horizon of a linear / cosine schedule is part of the optimisation path, so a resume
    keeps the checkpoint's even when ``max_steps`` changed (steps past it run at ``min_lr``);
    ``train.schedule_steps`` set explicitly moves it (the run then leaves the original path).
    """
    config, schedule = trainer.config, trainer.schedule
    saved = saved_horizon(state)
    if saved <= 0:
        raise CheckpointError(f"{folder}/trainer.json: no schedule horizon")
    horizon = config.schedule_steps or saved
    note = None
    if schedule.name in _HORIZON_SCHEDULES:
        if config.schedule_steps and horizon != saved:
            note = (f"schedule horizon changes from {saved} steps (the checkpoint's) to {horizon} "
                    "(train.schedule_steps)")
        elif not config.schedule_steps and saved != config.max_steps:
            note = (f"schedule horizon stays {saved} steps (from the checkpoint); "
                    f"set train.schedule_steps={config.max_steps} to stretch it")
    if horizon == schedule.total_steps:
        return schedule, note
    return dataclasses.replace(schedule, total_steps=horizon), note


def load(trainer: Trainer, path: Path | None = None) -> Path:
    """Restore the trainer from a checkpoint folder, after checking all of it."""
    folder = resolve(trainer.checkpoint_dir(), path)
    state = verify(folder)
    rank, world = trainer.dist.rank, trainer.dist.world
    # configs first: the cheapest checks, and the most likely mistakes
    _compare(state.get("train_config"), config_io.to_dict(trainer.config), "train", folder, RESUMABLE_CHANGES)
    _compare(state.get("run_config"), json.loads(json.dumps(trainer.run_config)), "run", folder,
             frozenset({"train"}))
    if state.get("world") != world:
        raise CheckpointError(f"{folder}: written by {state.get('world')} processes, this run has {world}; "
                              "resume with the same number of processes")
    if bool(state.get("stateful")) != trainer.stateful:
        raise CheckpointError(f"{folder}: carried-state mismatch (checkpoint stateful={state.get('stateful')})")
    schedule, note = restore_horizon(trainer, state, folder)
    # read every tensor before changing anything
    model_tensors = load_tensors(folder / "model.safetensors")
    opt_tensors = load_tensors(folder / "optimizer.safetensors")
    rank_name = _rank_file(rank)
    rank_tensors = load_tensors(folder / f"{rank_name}.safetensors")
    rank_meta = _read_json(folder / f"{rank_name}.json")
    try:
        step = int(state["step"])
        opt_state = unflatten_optimizer(opt_tensors, state["optimizer"], str(folder))
        groups_now = trainer.optimizer.state_dict()["param_groups"]
        if [len(g["params"]) for g in opt_state["param_groups"]] != [len(g["params"]) for g in groups_now]:
            raise CheckpointError(f"{folder}: optimizer parameter groups do not match this model")
        carried = {int(micro): unflatten_state(spec, rank_tensors, trainer.device, str(folder))
                   for micro, spec in rank_meta["carried"].items()}
        rng_meta = rank_meta["rng"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{folder}: trainer.json or {rank_name}.json is missing fields") from None
    load_state_strict(trainer.model, model_tensors, str(folder))
    try:
        trainer.optimizer.load_state_dict(opt_state)
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{folder}: optimizer state does not fit ({err})") from None
    _set_rng_state(rank_tensors, rng_meta, trainer.device, str(folder))
    trainer.step = step
    trainer.tokens_seen = int(state.get("tokens_seen", 0))
    trainer.best_eval_loss = state.get("best_eval_loss")
    trainer.bad_evals = int(state.get("bad_evals", 0))
    trainer.stopped_early = bool(state.get("stopped_early", False))
    trainer.last_eval = dict(state.get("last_eval") or {})
    last_loss = state.get("last_loss")
    trainer.last_loss = float("nan") if last_loss is None else float(last_loss)
    trainer.carried = carried
    trainer.schedule = schedule
    trainer.resume_note = note
    return folder
