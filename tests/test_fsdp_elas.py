"""ELAS models under FSDP2 on 2 CPU processes (gloo, torch.multiprocessing spawn).

- meta-device init -> activation checkpointing -> per-block torch.compile (aot_eager: Dynamo and
  AOTAutograd trace the ``torch.ops.elas`` fake implementations and autograd) -> fully_shard ->
  forward + backward, dense then 2:4: finite, equal to an eager unsharded copy, and the ELAS
  modules only ever see plain (all-gathered) parameters;
- a sharded checkpoint saved by 2 ranks loads in one process without a process group and gives
  the same outputs.
"""
import datetime
import os
import sys
import time

import pytest
import torch
import torch.distributed as dist

TIMEOUT_S = 300
WORLD = 2


def _init(rank: int, store: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=TIMEOUT_S))


def _runtime(rank: int, compile: bool = False):
    from elas_compile.train.runtime import Runtime

    return Runtime(device=torch.device("cpu"), amp_dtype=None, compile=compile, rank=rank,
                   world_size=WORLD, parallel="fsdp")


def _finish() -> None:
    """End a worker whose checks all passed: leave the process group, then exit without the
    interpreter's teardown (one CI run saw a worker abort there after its checks, "terminate called
    without an active exception": a C++ thread torn down at exit, not this test's subject)."""
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _spawn(fn, tmp_path, *args) -> None:
    import torch.multiprocessing as mp

    ctx = mp.start_processes(fn, args=(str(tmp_path / "store"), str(tmp_path), *args), nprocs=WORLD,
                             join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {WORLD} processes did not finish in {TIMEOUT_S} s")


def _elas_hand_llama(device: str):
    sys.path.insert(0, os.path.dirname(__file__))
    import elas_compile
    from tiny_models import HandLlama

    with torch.device(device):
        model = elas_compile.apply(HandLlama(), elas_compile.ELASConfig(rank=16, dense_warmup_steps=1))
    return model, elas_compile.SparsitySchedule(model)


def _meta_ac_compile_worker(rank: int, store: str, tmp: str) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.tensor import DTensor

    from elas_compile.api import elas_mlps
    from elas_compile.train.parallel import plain_parameters, wrap_model

    _init(rank, store)
    model, schedule = _elas_hand_llama("meta")
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    # the fake/meta path: forward + backward on meta tensors (fake impls and autograd of the ops)
    loss = model(ids.to("meta"), labels=ids.to("meta"))
    loss.backward()
    assert loss.device.type == "meta" and all(p.grad.shape == p.shape for p in model.parameters())
    model.zero_grad(set_to_none=True)

    seen = []
    for _, mlp in elas_mlps(model):
        mlp.register_forward_pre_hook(lambda mod, args: seen.append(plain_parameters(mod)))
    wrap_model(model, _runtime(rank, compile=True), activation_checkpointing=True, compile_backend="aot_eager")
    model.to_empty(device="cpu")
    torch.manual_seed(0)  # every rank draws the same full tensors, keeps its shard
    with torch.no_grad():
        for p in model.parameters():
            full = torch.rand(p.shape) * 0.2 - 0.1 if p.dim() > 1 else torch.ones(p.shape)
            p.copy_(DTensor.from_local(full.tensor_split(WORLD)[rank], p.device_mesh, p.placements,
                                       shape=p.shape, stride=p.stride()) if isinstance(p, DTensor) else full)
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    ref, ref_schedule = _elas_hand_llama("cpu")
    ref.load_state_dict(full)
    losses = []
    for step in range(2):  # step 0 dense, step 1 2:4 (the compiled blocks must see the switch)
        loss = model(ids, labels=ids)
        losses.append(loss.item())
        loss.backward()
        ref_loss = ref(ids, labels=ids)
        ref_loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(p.grad.full_tensor()).all() for p in model.parameters())
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            assert isinstance(p, DTensor), name  # resharded after forward/backward
            torch.testing.assert_close(p.grad.full_tensor(), q.grad, rtol=1e-4, atol=1e-6)
        model.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)
        schedule.step()
        ref_schedule.step()
    assert seen and all(seen)
    assert losses[0] != losses[1]  # same weights: the 2:4 step changed the function
    _finish()


def test_elas_under_fsdp2_meta_init_activation_checkpointing_compiled_blocks(tmp_path):
    _spawn(_meta_ac_compile_worker, tmp_path)


def _tiny_hf_elas(kernels: str = "auto"):
    sys.path.insert(0, os.path.dirname(__file__))
    import elas_compile
    from tiny_models import llama

    torch.manual_seed(0)
    return elas_compile.apply(llama(), elas_compile.ELASConfig(rank=16, dense_warmup_steps=0, kernels=kernels))


def _checkpoint_worker(rank: int, store: str, tmp: str) -> None:
    from pathlib import Path

    from elas_compile.train.dcp import save_checkpoint
    from elas_compile.train.optim import build_optimizer
    from elas_compile.train.parallel import wrap_model

    _init(rank, store)
    rt = _runtime(rank)
    model = _tiny_hf_elas()
    wrap_model(model, rt, activation_checkpointing=True)
    opt = build_optimizer(model, lr=1e-2, weight_decay=0.1)
    ids = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(1))
    mine = ids.tensor_split(WORLD)[rank]
    model(input_ids=mine, labels=mine, use_cache=False).loss.backward()
    opt.step()
    save_checkpoint(Path(tmp), model, opt, {}, {"step": 1, "tokens": 0}, rt)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits
    if rank == 0:
        torch.save(logits, Path(tmp) / "logits.pt")
    _finish()


def test_sharded_checkpoint_loads_on_one_process_with_identical_outputs(tmp_path):
    from elas_compile.train.dcp import load_checkpoint, load_weights
    from elas_compile.train.optim import build_optimizer
    from elas_compile.train.runtime import Runtime

    _spawn(_checkpoint_worker, tmp_path)
    ckpt = tmp_path / "checkpoint"
    assert sorted(p.name for p in (ckpt / "dcp").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert not dist.is_initialized()
    ids = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(1))
    expected = torch.load(tmp_path / "logits.pt")

    model = load_weights(ckpt, _tiny_hf_elas().eval())
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids, use_cache=False).logits, expected, rtol=0, atol=1e-6)

    model = _tiny_hf_elas()  # with the optimizer, as --resume does
    opt = build_optimizer(model, lr=1e-2, weight_decay=0.1)
    states, meta = load_checkpoint(ckpt, model, opt, Runtime(device=torch.device("cpu"), amp_dtype=None,
                                                               compile=False))
    assert meta["step"] == 1 and meta["world_size"] == WORLD and len(states["rng"]) == WORLD
    assert all(int(s["step"]) == 1 and s["exp_avg"].shape == p.shape and s["exp_avg"].abs().sum() > 0
               for p, s in ((p, opt.state[p]) for p in model.parameters()))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(input_ids=ids, use_cache=False).logits, expected, rtol=0, atol=1e-6)


def _fused_worker(rank: int, store: str, tmp: str) -> None:
    from elas_compile.train.parallel import wrap_model

    os.environ["ELAS_FUSED_ON_CPU"] = "1"  # the GPU graph (the fused op) on its CPU references
    _init(rank, store)
    model = _tiny_hf_elas(kernels="triton").to(torch.bfloat16)
    wrap_model(model, _runtime(rank, compile=True), activation_checkpointing=True)
    ids = torch.randint(0, 128, (2, 64), generator=torch.Generator().manual_seed(0))
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss  # compiles
    loss.backward()
    assert torch.isfinite(loss)
    with torch.profiler.profile() as prof:  # what the compiled blocks run
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    ran = [e.name for e in prof.events()]
    # every block's FFN runs the fused op's sparse GEMM: in the forward, and again where block
    # checkpointing recomputes the forward for the backward
    assert ran.count("elas::cslt_mm") == 4, [n for n in ran if n.startswith("elas::")]
    _finish()


@pytest.mark.slow  # Inductor in 2 CPU processes: about 2 minutes
def test_fused_ffn_under_fsdp2_activation_checkpointing_and_inductor_blocks(tmp_path):
    _spawn(_fused_worker, tmp_path)
