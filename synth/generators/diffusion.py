"""Diffusion generator (diffusers): text-to-image, image-to-image and class-conditional sampling.

Two backends behind one step: any diffusers pipeline through ``AutoPipelineForText2Image`` /
``AutoPipelineForImage2Image`` (SD 1.5, SD-Turbo, SDXL(-Turbo), FLUX, ... by config), and a
class-conditional pixel-space ``UNet2DModel`` with a diffusers scheduler (folder with ``unet/``,
``scheduler/`` and optionally ``synth_model.json``). torch and diffusers load in ``setup``.
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from synth.errors import ConfigError, InputError
from synth.generators._image_common import (
    call_halving,
    check_templates,
    draw_strength,
    label_set,
    prompt_runs,
    render_prompt,
    resolve_model,
    sample_rng,
    save_png_sample,
    select_parents,
    swap_scheduler,
    tasks_per_label,
    tasks_per_parent,
    to_pil,
)
from synth.registry import register
from synth.steps import Context, Generator, Params, Task

log = logging.getLogger(__name__)
Mode = Literal["txt2img", "img2img", "class_conditional"]
PROMPT_MODES = ("txt2img", "img2img")
DEFAULT_PROMPTS = ["a photo of a {label}"]
_UNET_FILES = ["unet/config.json", "unet/*.safetensors", "scheduler/*.json", "synth_model.json"]
_INSTALL = "the diffusion step needs torch and diffusers: pip install 'synth[diffusion]'"


class DiffusionParams(Params):
    model: str = Field(description="Hub id (network or HF cache) or local folder saved with save_pretrained")
    mode: Mode = Field(
        "txt2img", description="txt2img (prompts per label), img2img (variants of real images), class_conditional (UNet2DModel + scheduler)"
    )
    revision: str | None = Field(None, description="Hub branch/tag/commit (Hub ids only); the resolved commit is recorded")
    variant: str | None = Field(None, description="weights variant, e.g. 'fp16'")
    num_per_label: int | None = Field(None, ge=1, description="images per label (txt2img, class_conditional; default 4)")
    num_per_parent: int | None = Field(None, ge=1, description="variants per real image (img2img; default 1)")
    labels: list[str] | None = Field(None, description="labels to generate / parents to use; default: every label of the real train rows")
    label_names: dict[str, str] | None = Field(None, description="label -> word used in prompts, e.g. {'0': 'zero'}")
    prompts: list[str] | None = Field(
        None, min_length=1, description="prompt templates with {label}, one drawn per sample (default ['a photo of a {label}'])"
    )
    label_prompts: dict[str, list[str]] | None = Field(None, description="per-label templates, replacing `prompts` for those labels")
    negative_prompt: str | None = Field(None, description="negative prompt (pipelines that take one)")
    images_per_prompt: int | None = Field(None, ge=1, description="consecutive samples sharing one prompt draw (default 1)")
    steps: int | None = Field(None, ge=1, description="denoising steps (default: the pipeline's, or synth_model.json recommended_steps)")
    guidance: float | None = Field(None, ge=0, description="classifier-free guidance scale (default: the pipeline's / synth_model.json's)")
    strength: float | tuple[float, float] | None = Field(
        None, description="img2img strength in (0, 1], or a range [lo, hi] drawn per sample (default 0.5)"
    )
    scheduler: str | None = Field(None, description="diffusers scheduler class name, e.g. DDIMScheduler (default: the model's)")
    height: int | None = Field(None, ge=1, description="output height (default: the model's native size)")
    width: int | None = Field(None, ge=1, description="output width (default: the model's native size)")
    batch_size: int = Field(4, ge=1, description="images per pipeline call (halved on out-of-memory)")
    device: str = Field("cpu", pattern=r"^(cpu|mps|cuda(:\d+)?)$", description="cpu, cuda, cuda:N or mps")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="weights and compute dtype")
    attention_slicing: bool = Field(False, description="pipe.enable_attention_slicing() (less memory, slower)")
    vae_tiling: bool = Field(False, description="decode with a tiled VAE (large images on small GPUs)")
    compile: bool = Field(False, description="torch.compile the denoiser (GPU users; slow first batch)")
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads while generating (default: torch's); tiny models on busy CPUs: 1"
    )

    @model_validator(mode="after")
    def _check_mode(self) -> DiffusionParams:
        per_mode = {
            "num_per_label": ("txt2img", "class_conditional"),
            "num_per_parent": ("img2img",),
            "strength": ("img2img",),
            **dict.fromkeys(("label_names", "prompts", "label_prompts", "negative_prompt", "images_per_prompt"), PROMPT_MODES),
        }
        for key, modes in per_mode.items():
            if getattr(self, key) is not None and self.mode not in modes:
                raise ValueError(f"'{key}' does not apply to mode {self.mode!r} (only to {' / '.join(modes)}); remove it")
        for key in ("attention_slicing", "vae_tiling"):
            if getattr(self, key) and self.mode not in PROMPT_MODES:
                raise ValueError(f"'{key}' applies to pipelines (txt2img / img2img), not to mode {self.mode!r}")
        check_templates(self.prompts or [], "prompts")
        for lab, templates in (self.label_prompts or {}).items():
            if not templates:
                raise ValueError(f"label_prompts.{lab} is empty; give at least one template")
            check_templates(templates, f"label_prompts.{lab}")
        lo, hi = (self.strength, self.strength) if isinstance(self.strength, float | int) else (self.strength or (0.5, 0.5))
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"strength must be in (0, 1] (a range as [lo, hi] with lo <= hi), got {self.strength!r}")
        return self


@dataclass
class Job:
    """One sample's resolved inputs: everything the backend needs and the provenance records."""

    task: Task
    seed: int
    prompt: str | None = None
    negative: str | None = None
    strength: float | None = None
    class_index: int | None = None
    draws: dict[str, Any] | None = None


@register("diffusion")
class DiffusionGenerator(Generator):
    """Images from a diffusers model: per-label prompts, variants of real images, or class labels.

    Reads: kept train image rows (their labels; for img2img their payload images, resized to
    height x width). Writes: one PNG per sample at ``data/<name>/<id>.png`` (path = uri), with
    model, model_revision (Hub commit or local file hash), seed, prompt and ``params`` (mode,
    scheduler, steps, guidance, size, template, strength, dtype, device, batch size, versions);
    img2img rows have ``parent_id``. Drops: images a pipeline's safety checker flags are kept on
    disk but rejected as ``diffusion:nsfw``. Counters: pipeline_calls, oom_halvings.

    One ``torch.Generator`` per sample seeded with the sample seed: same config + seed give the
    same PNG bytes on the same machine. Weights load as safetensors only, never remote code.

    Example::

        {type: diffusion, model: models/digits-diffusion, mode: class_conditional, num_per_label: 8, steps: 10}
        {type: diffusion, model: stabilityai/sd-turbo, prompts: ["a photo of a {label}"], steps: 1, guidance: 0.0,
         height: 512, width: 512, device: cuda, dtype: float16, batch_size: 8}
    """

    Params: ClassVar[type[DiffusionParams]] = DiffusionParams
    modality: ClassVar[Literal["image", "text"]] = "image"

    def setup(self, ctx: Context) -> None:
        p = self.params
        self._batch = p.batch_size
        if p.mode == "class_conditional":
            folder, _, revision = resolve_model(p.model, p.revision, allow_patterns=_UNET_FILES)
            self._backend: PipelineBackend | UNetBackend = UNetBackend(p, folder)
        else:
            source, rev_kw, revision = resolve_model(p.model, p.revision)
            self._backend = PipelineBackend(p, source, rev_kw)
        self._revision = revision
        log.info("%s: loaded %s (%s, revision %s) on %s/%s", self.name, p.model, p.mode, revision, p.device, p.dtype)

    def teardown(self) -> None:
        self._backend = None  # type: ignore[assignment]

    def plan(self, real, ctx: Context) -> list[Task]:
        p = self.params
        if p.mode == "img2img":
            return tasks_per_parent(select_parents(real, p.labels), p.num_per_parent or 1, p.images_per_prompt or 1)
        labels = label_set(real, p.labels)
        if p.mode == "class_conditional":
            for lab in labels:
                self._backend.class_index(lab)  # fail before generating anything
        return tasks_per_label(labels, p.num_per_label or 4, p.images_per_prompt or 1)

    def _job(self, task: Task, ctx: Context) -> Job:
        p, seed = self.params, self.sample_seed(task, ctx)
        if p.mode == "class_conditional":
            ci = self._backend.class_index(task.label)
            return Job(task, seed, class_index=ci, draws={"class_index": ci})
        templates = (p.label_prompts or {}).get(task.label or "") or p.prompts or DEFAULT_PROMPTS
        group_seed = self.sample_seed(Task(task.extra.get("group", task.index)), ctx)  # shared by one prompt group
        ti = sample_rng(group_seed).randrange(len(templates))
        draws: dict[str, Any] = {"template": templates[ti], "template_index": ti}
        if p.label_names:
            draws["label_name"] = p.label_names.get(task.label or "", task.label)
        strength = None
        if p.mode == "img2img":
            strength, drawn = draw_strength(sample_rng(seed), p.strength if p.strength is not None else 0.5, self._backend.steps)
            draws |= {"strength": strength} | ({"strength_drawn": drawn} if drawn != strength else {})
        prompt = render_prompt(templates[ti], task.label, p.label_names or {})
        return Job(task, seed, prompt=prompt, negative=p.negative_prompt, strength=strength, draws=draws)

    def generate(self, tasks: list[Task], ctx: Context):
        jobs = [self._job(t, ctx) for t in tasks]
        jobs.sort(key=lambda j: (j.strength or 0.0, j.task.index))  # a batch shares one img2img strength
        for _, group in itertools.groupby(jobs, key=lambda j: j.strength):
            todo = list(group)
            while todo:
                batch, todo = todo[: self._batch], todo[self._batch :]
                results = call_halving(batch, lambda b: self._call(b, ctx), lambda n: self._on_oom(n, ctx))
                for job, (image, flagged) in zip(batch, results, strict=True):
                    yield self._sample(job, image, flagged, len(batch), ctx)

    def _call(self, batch: list[Job], ctx: Context) -> list[tuple[Any, bool]]:
        ctx.count(self.name, "pipeline_calls")
        torch, before, threads = self._backend.torch, self._backend.torch.get_num_threads(), self.params.threads
        self._threads = threads or before
        if not threads or threads == before:
            return self._backend.run(batch, ctx)
        torch.set_num_threads(threads)  # scoped to this call: other steps keep theirs
        try:
            return self._backend.run(batch, ctx)
        finally:
            torch.set_num_threads(before)

    def _on_oom(self, n: int, ctx: Context) -> None:
        ctx.count(self.name, "oom_halvings")
        self._batch = max(1, min(self._batch, n // 2))
        self._backend.empty_cache()

    def _sample(self, job: Job, image, flagged: bool, batch_size: int, ctx: Context):
        params = {"mode": self.params.mode, **self._backend.settings, **(job.draws or {}), "batch_size": batch_size}
        if self.params.device == "cpu":
            params["cpu_threads"] = self._threads  # float reductions can depend on it
        if job.negative is not None:
            params["negative_prompt"] = job.negative
        s = save_png_sample(
            self, job.task, ctx, image, job.seed, model=self.params.model, model_revision=self._revision, prompt=job.prompt, params=params
        )
        if flagged:
            s.reject("diffusion:nsfw")
            ctx.count(self.name, "dropped_nsfw")
        return s


def _import_torch(pipelines: bool = True):
    """torch and diffusers (and transformers for pipelines: their text encoders), with an install hint."""
    try:
        import diffusers
        import torch

        transformers = __import__("transformers") if pipelines else None
    except ImportError as e:
        raise ConfigError(f"{_INSTALL} ({e})") from None
    from synth import progress

    if not progress.enabled():  # the loading bars of from_pretrained follow synth's setting
        diffusers.utils.logging.disable_progress_bar()
        if transformers is not None:
            transformers.utils.logging.disable_progress_bar()
    return torch, diffusers


# ---- backends -----------------------------------------------------------------------------------
class PipelineBackend:
    """Any diffusers text-to-image or image-to-image pipeline, loaded through the AutoPipeline classes."""

    def __init__(self, p: DiffusionParams, source: str, revision: str | None):
        torch, diffusers = _import_torch()
        self.torch, self.p = torch, p
        auto = diffusers.AutoPipelineForImage2Image if p.mode == "img2img" else diffusers.AutoPipelineForText2Image
        try:
            pipe = auto.from_pretrained(
                source, revision=revision, variant=p.variant, dtype=getattr(torch, p.dtype), use_safetensors=True, trust_remote_code=False
            )
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"model {p.model!r}: cannot load a diffusers {p.mode} pipeline ({type(e).__name__}: {e}).") from None
        pipe.set_progress_bar_config(disable=True)
        if p.scheduler:
            pipe.scheduler = swap_scheduler(pipe.scheduler, p.scheduler, diffusers)
        pipe.to(p.device)
        if p.attention_slicing:
            pipe.enable_attention_slicing()
        if p.vae_tiling:
            if not hasattr(getattr(pipe, "vae", None), "enable_tiling"):
                raise ConfigError(f"vae_tiling: pipeline {type(pipe).__name__} has no VAE that supports tiling; remove it.")
            pipe.vae.enable_tiling()
        denoiser = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
        if p.compile:
            setattr(pipe, denoiser, torch.compile(getattr(pipe, denoiser)))
        sig = inspect.signature(pipe.__call__).parameters
        if p.negative_prompt is not None and "negative_prompt" not in sig:
            raise ConfigError(f"negative_prompt: pipeline {type(pipe).__name__} does not take a negative prompt; remove it.")
        if p.guidance is not None and "guidance_scale" not in sig:
            raise ConfigError(f"guidance: pipeline {type(pipe).__name__} has no guidance_scale; remove it.")
        self.pipe, self.sig = pipe, sig
        self.steps = p.steps or sig["num_inference_steps"].default
        self.guidance = p.guidance if p.guidance is not None else (sig["guidance_scale"].default if "guidance_scale" in sig else None)
        size = getattr(pipe, "default_sample_size", None) or getattr(getattr(pipe, denoiser).config, "sample_size", 64)
        nh, nw = (size, size) if isinstance(size, int) else size
        scale = getattr(pipe, "vae_scale_factor", 8)
        self.height, self.width = p.height or nh * scale, p.width or nw * scale
        if self.height % 8 or self.width % 8:
            raise ConfigError(f"height/width: latent diffusion pipelines need multiples of 8, got {self.height} x {self.width}.")
        self.settings = _settings(self, type(pipe).__name__, pipe.scheduler, diffusers)

    def run(self, jobs: list[Job], ctx: Context) -> list[tuple[Any, bool]]:
        from PIL import Image

        keys = [(j.prompt, j.negative, j.task.parent.id if j.task.parent else None) for j in jobs]
        r = prompt_runs(keys)  # runs of equal (prompt, parent): pass each once, num_images_per_prompt=r
        firsts = jobs[::r]
        kwargs: dict[str, Any] = {
            "prompt": [j.prompt for j in firsts],
            "num_images_per_prompt": r,
            "num_inference_steps": self.steps,
            "generator": [self.torch.Generator("cpu").manual_seed(j.seed) for j in jobs],
            "output_type": "pil",
        }
        if self.guidance is not None:
            kwargs["guidance_scale"] = self.guidance
        if self.p.negative_prompt is not None:
            kwargs["negative_prompt"] = [j.negative for j in firsts]
        if self.p.mode == "img2img":
            kwargs["image"] = [
                j.task.parent.load_image(ctx.run_dir).convert("RGB").resize((self.width, self.height), Image.BICUBIC) for j in firsts
            ]
            kwargs["strength"] = jobs[0].strength
        for key in ("height", "width"):
            if key in self.sig:
                kwargs[key] = getattr(self, key)
        out = self.pipe(**kwargs)
        flags = getattr(out, "nsfw_content_detected", None) or [False] * len(out.images)
        if len(out.images) != len(jobs):
            raise RuntimeError(f"{type(self.pipe).__name__} returned {len(out.images)} images for {len(jobs)} requested")
        return [(img, bool(f)) for img, f in zip(out.images, flags, strict=True)]

    def empty_cache(self) -> None:
        _empty_cache(self.torch, self.p.device)


class UNetBackend:
    """A class-conditional pixel-space ``UNet2DModel`` and its scheduler (``unet/``, ``scheduler/``);
    ``synth_model.json`` gives the class labels, the null class for guidance, the native image size
    and the recommended steps/guidance. Without it, the labels are the class indices "0".."n-1"."""

    def __init__(self, p: DiffusionParams, folder: str):
        torch, diffusers = _import_torch(pipelines=False)
        self.torch, self.p = torch, p
        meta_path = Path(folder) / "synth_model.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        try:
            unet = diffusers.UNet2DModel.from_pretrained(
                folder, subfolder="unet", use_safetensors=True, variant=p.variant, dtype=getattr(torch, p.dtype)
            )
            sched_cfg = json.loads((Path(folder) / "scheduler" / "scheduler_config.json").read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"model {p.model!r}: not a class-conditional UNet2DModel folder with unet/ and scheduler/ ({e}).") from None
        n = unet.config.num_class_embeds
        if not n:
            raise ConfigError(
                f"model {p.model!r}: its UNet2DModel has no class embeddings (num_class_embeds); use mode txt2img or img2img."
            )
        scheduler = getattr(diffusers, sched_cfg["_class_name"]).from_config(sched_cfg)
        self.scheduler = swap_scheduler(scheduler, p.scheduler, diffusers) if p.scheduler else scheduler
        self.unet = unet.to(p.device).eval()
        if p.compile:
            self.unet = torch.compile(self.unet)
        guide = meta.get("guidance") or {}
        self.null_class = guide.get("null_class_index") if guide.get("supported") else None
        self.labels = [str(c) for c in meta.get("class_labels", range(n))]
        self.steps = p.steps or meta.get("recommended_steps") or 50
        self.guidance = (
            p.guidance if p.guidance is not None else (guide.get("recommended_scale", 1.0) if self.null_class is not None else 1.0)
        )
        if self.guidance != 1.0 and self.null_class is None:
            raise ConfigError(
                f"guidance: model {p.model!r} declares no null class for classifier-free guidance "
                "(synth_model.json guidance.null_class_index); set guidance: 1.0 or remove it."
            )
        size = meta.get("image_size") or unet.config.sample_size
        native = (size, size) if isinstance(size, int) else tuple(size)
        self.height, self.width = p.height or native[0], p.width or native[1]
        self.settings = _settings(self, "UNet2DModel", self.scheduler, diffusers, null_class_index=self.null_class)

    def class_index(self, label: str | None) -> int:
        if label not in self.labels:
            raise ConfigError(
                f"label {label!r} is not a class of model {self.p.model!r} (classes: {', '.join(self.labels)}). "
                "Use 'labels' to choose a subset."
            )
        return self.labels.index(label)

    def run(self, jobs: list[Job], ctx: Context) -> list[tuple[Any, bool]]:
        gens = [self.torch.Generator("cpu").manual_seed(j.seed) for j in jobs]
        labels, size = [j.class_index for j in jobs], (self.height, self.width)
        x = sample_class_conditional(self.torch, self.unet, self.scheduler, labels, gens, self.steps, self.guidance, self.null_class, size)
        u8 = ((x.float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(self.torch.uint8).numpy()
        return [(to_pil(a[0]) if a.shape[0] == 1 else to_pil(a.transpose(1, 2, 0)), False) for a in u8]

    def empty_cache(self) -> None:
        _empty_cache(self.torch, self.p.device)


def sample_class_conditional(
    torch, unet, scheduler, labels: list[int], generators: list, steps: int, guidance: float, null_class: int | None, size: tuple[int, int]
):
    """Denoise one image per label from per-sample noise (``randn`` on each sample's own generator,
    and the same generators for the scheduler's noise), so a sample depends only on its label,
    seed and settings. Returns float [n, C, H, W] in about [-1, 1]. Mutates ``scheduler``."""
    with torch.no_grad():
        c = unet.config.in_channels
        x = torch.stack([torch.randn((c, *size), generator=g, dtype=torch.float32) for g in generators])
        x = (x * scheduler.init_noise_sigma).to(device=unet.device, dtype=unet.dtype)
        y = torch.as_tensor(labels, dtype=torch.long, device=unet.device)
        guided = guidance != 1.0
        if guided:
            y = torch.cat([y, torch.full_like(y, null_class)])
        scheduler.set_timesteps(steps)
        extra = {"generator": list(generators)} if "generator" in inspect.signature(scheduler.step).parameters else {}
        for t in scheduler.timesteps:
            model_in = scheduler.scale_model_input(x, t)
            if guided:
                cond, uncond = unet(torch.cat([model_in, model_in]), t, class_labels=y).sample.chunk(2)
                out = uncond + guidance * (cond - uncond)
            else:
                out = unet(model_in, t, class_labels=y).sample
            x = scheduler.step(out, t, x, **extra).prev_sample
    return x


def _settings(backend, model_class: str, scheduler, diffusers, **extra) -> dict[str, Any]:
    """The resolved settings every sample of a backend records in ``params`` (one definition for both)."""
    p = backend.p
    return {"pipeline": model_class, "scheduler": type(scheduler).__name__, "steps": backend.steps, "guidance": backend.guidance,
            "height": backend.height, "width": backend.width, **extra, "dtype": p.dtype, "device": p.device,
            "diffusers_version": diffusers.__version__, "torch_version": backend.torch.__version__}  # fmt: skip


def _empty_cache(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device == "mps":
        torch.mps.empty_cache()
