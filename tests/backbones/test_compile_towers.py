"""``compile=True``: torch.compile of the towers computes what eager mode computes, without recompiling
per batch, and falls back to eager mode with a clear message where compilation is unavailable."""

from __future__ import annotations

import copy

import pytest
import torch

import medpeft
from medpeft.backbones import compilation
from medpeft.backbones.compilation import compile_support, is_compiled

TOL = 1e-5


def _graphs() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def _perturbed(model: medpeft.AceLoraModel, seed: int = 0) -> medpeft.AceLoraModel:
    """Non-zero LoRA B (zero at init would hide the LoRA path) and a fixed adapter state."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            if p.dim() > 0:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.fixture(scope="module")
def pair(tiny_backbone):
    """(eager, compiled) copies of the same tiny ACE-LoRA model, paper configuration (256-token padding)."""
    torch.manual_seed(0)
    eager = _perturbed(medpeft.AceLoraModel(copy.deepcopy(tiny_backbone)))
    compiled = copy.deepcopy(eager)
    report = compiled.compile_towers()
    if not report.compiled:
        pytest.skip(report.message)
    return eager, compiled


@pytest.fixture(scope="module")
def batch(tiny_backbone):
    g = torch.Generator().manual_seed(1)
    size = tiny_backbone.image_size
    pixels = torch.randn(4, 3, size, size, generator=g)
    ids = tiny_backbone.tokenizer(
        ["no acute findings", "small left pleural effusion", "cardiomegaly", "lungs are clear"],
        padding="max_length",
    )
    labels = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=torch.float32)
    return pixels, ids, labels


def test_compile_report_and_modules(pair, tiny_backbone):
    _, compiled = pair
    report = compiled.compile_report
    n_vit = len(tiny_backbone.clip.visual.trunk.blocks)
    n_bert = len(tiny_backbone.clip.text.transformer.encoder.layer)
    assert report.compiled and report.modules == (n_vit - 1) + (n_bert - 1) + 2  # + both hypergraphs
    blocks = compiled.clip.visual.trunk.blocks
    assert is_compiled(blocks[0]) and not is_compiled(blocks[-1])  # the hooked last block stays eager
    assert compiled.compile_towers() is report  # idempotent: nothing compiled twice
    # state-dict keys are unchanged (adapters save and load as before)
    assert list(compiled.adapter_state_dict()) == list(pair[0].adapter_state_dict())


def test_compiled_inference_equals_eager(pair, batch):
    eager, compiled = pair
    pixels, ids, _ = batch
    prompts = ids.reshape(2, 2, -1)
    eager.eval(), compiled.eval()
    with torch.no_grad():
        for fn in ("encode_image", "encode_image_tokens"):
            a, b = getattr(eager, fn)(pixels), getattr(compiled, fn)(pixels)
            assert a.shape == b.shape and (a - b).abs().max().item() <= TOL, fn
        a, b = eager.encode_text(ids), compiled.encode_text(ids)
        assert a.shape == (4, eager.backbone.embed_dim) and (a - b).abs().max().item() <= TOL
        a, b = eager.encode_prompts(prompts), compiled.encode_prompts(prompts)
        assert a.shape == (2, eager.backbone.embed_dim) and (a - b).abs().max().item() <= TOL


@pytest.mark.slow
def test_compiled_training_step_equals_eager_with_dropout(pair, batch):
    """Training mode (LoRA dropout 0.1, BERT's own dropout): same seed, same masks, same loss and grads;
    further training steps of the same shape do not recompile. (Slow: compiles the backward graphs.)"""
    eager, compiled = pair
    pixels, ids, labels = batch
    results = []
    for model in (eager, compiled):
        model.train()
        model.zero_grad(set_to_none=True)
        torch.manual_seed(123)
        loss = model(pixels, ids, labels)
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.trainable_parameters().items()}))
        model.zero_grad(set_to_none=True)
    (la, ga), (lb, gb) = results
    assert la == pytest.approx(lb, abs=1e-5)
    assert set(ga) == set(gb) and len(ga) > 0
    assert max((ga[k] - gb[k]).abs().max().item() for k in ga) <= TOL
    torch.manual_seed(124)  # a different seed gives different dropout masks: the check above can fail
    before = _graphs()
    other = compiled(pixels, ids, labels)
    assert other.item() != pytest.approx(lb, abs=1e-6)
    other.backward()
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        compiled(torch.randn(pixels.shape, generator=g), ids, labels).backward()
    compiled.zero_grad(set_to_none=True)
    assert _graphs() == before  # no recompilation per training batch


def test_no_recompilation_per_batch(pair, batch):
    """After the first batch of a shape, further batches of that shape reuse the compiled graphs."""
    _, compiled = pair
    pixels, ids, labels = batch
    compiled.eval()
    with torch.no_grad():
        compiled(pixels, ids, labels)  # this shape and mode compiled (maybe already)
        before = _graphs()
        for seed in range(3):
            g = torch.Generator().manual_seed(seed)
            loss = compiled(torch.randn(pixels.shape, generator=g), ids, labels)
    assert torch.isfinite(loss) and _graphs() == before


def test_fast_text_path_compiles_lengths_dynamically(tiny_backbone):
    """``text_padding="longest"``: batches of new lengths do not recompile the text tower."""
    torch.manual_seed(0)
    config = medpeft.AceLoraConfig(text_padding="longest", mask_padding=True)
    model = _perturbed(medpeft.AceLoraModel(copy.deepcopy(tiny_backbone), config)).eval()
    eager = copy.deepcopy(model)
    assert model.compile_towers().compiled
    tok = tiny_backbone.tokenizer
    texts = [
        ["a b c d e f g h", "effusion"],
        ["mild cardiomegaly with small effusions seen on the left side", "x"],
        ["clear lungs no pneumothorax and no focal consolidation at all here today", "y z"],
    ]
    lengths, outs = [], []
    with torch.no_grad():
        model.encode_text(tok(texts[0], padding="longest"))  # first length compiles
        before = _graphs()
        for t in texts[1:]:
            ids = tok(t, padding="longest")
            lengths.append(ids.shape[1])
            outs.append((model.encode_text(ids) - eager.encode_text(ids)).abs().max().item())
    assert len(set(lengths)) == 2  # the batches really have new lengths
    assert _graphs() == before
    assert max(outs) <= TOL


def test_fallback_when_compile_is_unavailable(tiny_backbone, monkeypatch):
    """No compiler (simulated: torch.compile raises): a warning naming the reason, and eager mode works."""

    def broken(*args, **kwargs):
        raise RuntimeError("Compiler: cc is not found")

    compile_support.cache_clear()
    monkeypatch.setattr(torch, "compile", broken)
    try:
        model = medpeft.AceLoraModel(copy.deepcopy(tiny_backbone))
        with pytest.warns(
            RuntimeWarning, match="torch.compile is unavailable on cpu .*cc is not found.*eagerly"
        ):
            report = model.compile_towers()
        assert not report.compiled and report.modules == 0
        assert not is_compiled(model)
        with torch.no_grad():
            out = model.encode_image(torch.zeros(1, 3, tiny_backbone.image_size, tiny_backbone.image_size))
        assert out.shape == (1, tiny_backbone.embed_dim)
    finally:
        compile_support.cache_clear()  # later tests probe the real torch.compile again


def test_compile_kwarg_on_the_constructor(tiny_backbone, monkeypatch):
    calls = []
    monkeypatch.setattr(
        compilation, "compile_towers", lambda clip, device, **kw: calls.append((device, kw)) or "report"
    )
    monkeypatch.setattr("medpeft.ace_lora.model.compile_towers", compilation.compile_towers)
    model = medpeft.AceLoraModel(copy.deepcopy(tiny_backbone), compile=True)
    assert model.compile_report == "report"
    assert len(calls) == 1 and calls[0][0] == torch.device("cpu")
    assert calls[0][1]["text_dynamic"] is False and len(calls[0][1]["extra"]) == 2


def test_batched_zero_shot_with_compile_equals_eager(pair, tiny_backbone):
    """``InferenceOptions(compile=True)``: the batched scorer (LoRA merged, inference mode) gives the
    eager probabilities, and compiles an eager model in place on first use."""
    from medpeft.evaluation.inference import ClassPrompts, classify_images
    from medpeft.evaluation.options import InferenceOptions

    eager, compiled = pair
    fresh = copy.deepcopy(eager)  # never compiled: the option must compile it
    size = tiny_backbone.image_size
    images = list(torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(2)))
    prompts = ClassPrompts(
        ["effusion", "normal"], [["effusion", "pleural effusion"], ["normal", "no finding"]]
    )
    _, ref = classify_images(eager, prompts, images, options=InferenceOptions(batch_size=2, device="cpu"))
    opts = InferenceOptions(batch_size=2, device="cpu", compile=True)
    _, got = classify_images(fresh, prompts, images, options=opts)
    assert is_compiled(fresh) and fresh.compile_report.compiled
    assert ref.probs.shape == got.probs.shape == (5, 2) and got.kept == list(range(5))
    assert abs(ref.probs - got.probs).max() <= TOL
