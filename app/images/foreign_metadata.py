"""Generation settings that other image tools write, read into `ImageParams`.

- ComfyUI: a `prompt` text chunk holding the graph it ran in its API form, {node id:
  {"class_type", "inputs"}}, where an input is a value or a link [node id, output]; and a
  `workflow` chunk holding the editor's layout of the same graph (not needed here). The
  settings are found by walking from the sampler node: `positive` / `negative` to the text
  encoders, `model` through LoRA loaders to the checkpoint loader, `latent_image` to the
  empty latent's size.
- InvokeAI (3.x and later): an `invokeai_metadata` chunk, one flat JSON object
  (`positive_prompt`, `negative_prompt`, `seed`, `steps`, `cfg_scale`, `scheduler`, `width`,
  `height`, `model`, `loras`…).
- AUTOMATIC1111 JPEG and WebP files: the `parameters` text in the EXIF UserComment, behind
  its 8-byte character code (`UNICODE\\0` + UTF-16, or `ASCII\\0\\0\\0`).

What maps onto a ModelDeck parameter is restored; everything else is listed, by name, in the
`fields` of the `ImageMetadata`, so a person sees what did not come across. The documents are
strangers' bytes: each is parsed by `parse_untrusted_json` (size and nesting bounded) and
walked a bounded number of steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from app.images.params import MAX_SEED, ImageParams, ImageParamsError
from app.untrusted_json import UntrustedJsonError, parse_untrusted_json

__all__ = [
    "COMFYUI_PROMPT_KEY",
    "COMFYUI_WORKFLOW_KEY",
    "INVOKEAI_KEY",
    "MAX_GRAPH_CHARS",
    "decode_user_comment",
    "parse_comfyui_prompt",
    "parse_invokeai_metadata",
]

COMFYUI_PROMPT_KEY = "prompt"
COMFYUI_WORKFLOW_KEY = "workflow"
INVOKEAI_KEY = "invokeai_metadata"
# A ComfyUI graph of a few hundred nodes is a few hundred kB; InvokeAI's object a few kB.
MAX_GRAPH_CHARS = 2 * 1024 * 1024
_MAX_GRAPH_DEPTH = 16
_MAX_HOPS = 64  # links followed from one input (a chain of LoRA loaders, reroutes)

# Sampler names → ModelDeck's schedulers.
_COMFY_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "dpmpp_2m": "DPM++ 2M",
    "ddim": "DDIM",
}
_INVOKE_SCHEDULERS = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "dpmpp_2m": "DPM++ 2M",
    "ddim": "DDIM",
}
_INVOKE_FAMILIES = {
    "sd-1": "SD 1.x",
    "sd-2": "SD 2.x",
    "sdxl": "SDXL",
    "sd-3": "SD 3",
    "flux": "Flux",
}
_SAMPLER_CLASSES = ("KSampler", "KSamplerAdvanced")
# Nodes every text-to-image graph ends with: nothing of theirs is left out.
_ORDINARY_CLASSES = frozenset({"VAEDecode", "SaveImage", "PreviewImage"})
_TEXT_INPUTS = ("text", "text_g", "text_l", "prompt")
# InvokeAI keys that map (or only describe the file) and are not listed as left out.
_INVOKE_MAPPED = frozenset(
    {
        "positive_prompt",
        "negative_prompt",
        "seed",
        "steps",
        "cfg_scale",
        "scheduler",
        "width",
        "height",
        "model",
        "loras",
        "app_version",
        "generation_mode",
    }
)


def parse_comfyui_prompt(text: str) -> tuple[ImageParams, dict[str, str], str | None]:
    """The settings of ComfyUI's `prompt` chunk: parameters, what did not map, the sampler.

    Raises:
        ImageParamsError: it is not a ComfyUI graph with a sampler node, or a value is out of
            range.
    """
    graph = _document(text, "the ComfyUI prompt")
    nodes = {str(key): node for key, node in graph.items() if isinstance(node, Mapping)}
    sampler_id = next(
        (key for key, node in nodes.items() if node.get("class_type") in _SAMPLER_CLASSES), None
    )
    if sampler_id is None:
        raise ImageParamsError("the ComfyUI graph has no KSampler node", field="params")
    inputs = _inputs(nodes[sampler_id])
    left: dict[str, str] = {}
    values: dict[str, Any] = {}
    values["prompt"] = _text_of(nodes, inputs.get("positive"))
    values["negative"] = _text_of(nodes, inputs.get("negative"))
    _take_number(values, "steps", inputs.get("steps"), left)
    _take_number(values, "guidance", inputs.get("cfg"), left)
    seed = inputs.get("seed", inputs.get("noise_seed"))
    if _is_int(seed) and 0 <= seed <= MAX_SEED:
        values["seed"] = seed
    elif seed is not None:
        left["Seed"] = f"{_short(seed)} (beyond the 32-bit seeds ModelDeck and A1111 use)"
    sampler = inputs.get("sampler_name")
    sampler_name = sampler if isinstance(sampler, str) else None
    if sampler_name in _COMFY_SAMPLERS:
        values["scheduler"] = _COMFY_SAMPLERS[sampler_name]
    elif sampler_name is not None:
        left["Sampler"] = sampler_name
    schedule = inputs.get("scheduler")
    if isinstance(schedule, str) and schedule != "normal":
        left["Schedule type"] = schedule
    denoise = inputs.get("denoise")
    if isinstance(denoise, int | float) and not isinstance(denoise, bool) and denoise < 1:
        left["Denoise"] = f"{denoise:g}"
    latent = _node_at(nodes, inputs.get("latent_image"))
    if latent is not None:
        latent_inputs = _inputs(latent)
        if _is_int(latent_inputs.get("width")) and _is_int(latent_inputs.get("height")):
            values["width"], values["height"] = latent_inputs["width"], latent_inputs["height"]
        if _is_int(latent_inputs.get("batch_size")):
            values["batch"] = latent_inputs["batch_size"]
    checkpoint, loras = _model_chain(nodes, inputs.get("model"))
    if checkpoint is not None:
        values["model"] = {"name": _stem(checkpoint)}
    if loras:
        values["loras"] = loras
    walked = {sampler_id, *_reached(nodes, sampler_id)}
    others = sorted(
        {
            str(node.get("class_type"))
            for key, node in nodes.items()
            if key not in walked
            and isinstance(node.get("class_type"), str)
            and node.get("class_type") not in _ORDINARY_CLASSES
        }
    )
    if others:
        left["Other nodes"] = ", ".join(others[:20])
    return _params(values, left), left, sampler_name


def parse_invokeai_metadata(text: str) -> tuple[ImageParams, dict[str, str], str | None]:
    """The settings of InvokeAI's `invokeai_metadata` chunk: parameters, what did not map,
    the scheduler it named.

    Raises:
        ImageParamsError: it is not an object of InvokeAI's, or a value is out of range.
    """
    document = _document(text, "the InvokeAI metadata")
    if "positive_prompt" not in document:
        raise ImageParamsError("the InvokeAI metadata has no positive_prompt", field="params")
    values: dict[str, Any] = {
        "prompt": _string(document.get("positive_prompt")),
        "negative": _string(document.get("negative_prompt")),
    }
    left: dict[str, str] = {}
    for source, target in (("steps", "steps"), ("cfg_scale", "guidance")):
        _take_number(values, target, document.get(source), left)
    for side in ("width", "height"):
        if _is_int(document.get(side)):
            values[side] = document[side]
    seed = document.get("seed")
    if _is_int(seed) and 0 <= seed <= MAX_SEED:
        values["seed"] = seed
    scheduler = document.get("scheduler")
    scheduler_name = scheduler if isinstance(scheduler, str) else None
    if scheduler_name in _INVOKE_SCHEDULERS:
        values["scheduler"] = _INVOKE_SCHEDULERS[scheduler_name]
    elif scheduler_name is not None:
        left["Scheduler"] = scheduler_name
    model = document.get("model")
    if isinstance(model, Mapping):
        name = model.get("name", model.get("model_name"))
        if isinstance(name, str) and name:
            values["model"] = {"name": name}
            base = model.get("base", model.get("base_model"))
            if isinstance(base, str):
                values["model"]["family"] = _invoke_family(base)
    loras = []
    for item in document.get("loras") or ():
        if not isinstance(item, Mapping):
            continue
        lora = item.get("model", item.get("lora"))
        name = lora.get("name", lora.get("model_name")) if isinstance(lora, Mapping) else None
        weight = item.get("weight", 1.0)
        if isinstance(name, str) and name and isinstance(weight, int | float):
            loras.append({"name": name, "weight": weight})
    if loras:
        values["loras"] = loras
    for key, value in document.items():
        if key not in _INVOKE_MAPPED and value not in (None, [], {}, ""):
            left[str(key)] = _short(value)
    return _params(values, left), left, scheduler_name


def decode_user_comment(raw: bytes | str) -> str | None:
    """The text of an EXIF UserComment (A1111 writes `UNICODE\\0` + UTF-16 big-endian)."""
    if isinstance(raw, str):
        return raw
    code, body = raw[:8], raw[8:]
    if code == b"UNICODE\0":
        for encoding in ("utf-16-be", "utf-16-le"):
            try:
                text = body.decode(encoding)
            except UnicodeDecodeError:
                continue
            if "\0" not in text.rstrip("\0"):
                return text.rstrip("\0")
        return None
    if code in (b"ASCII\0\0\0", b"\0" * 8):
        return body.decode("latin-1").rstrip("\0")
    try:
        return raw.decode("utf-8").rstrip("\0")
    except UnicodeDecodeError:
        return None


# --- helpers -----------------------------------------------------------------------------------


def _document(text: str, what: str) -> Mapping[str, Any]:
    try:
        document = parse_untrusted_json(
            text, max_bytes=MAX_GRAPH_CHARS, max_depth=_MAX_GRAPH_DEPTH, what=what
        )
    except UntrustedJsonError as error:
        raise ImageParamsError(str(error), field="params") from None
    if not isinstance(document, Mapping):
        raise ImageParamsError(f"{what} is not a JSON object", field="params")
    return document


def _params(values: dict[str, Any], left: dict[str, str]) -> ImageParams:
    """The parameters `values` make; a value out of ModelDeck's range (a batch of 100, a
    weight of 20) is moved to `left` rather than losing everything else."""
    for _ in range(len(values) + 1):
        try:
            return ImageParams.from_json(values)
        except ImageParamsError as error:
            field = error.field
            if field not in values or field in ("prompt", "negative"):
                raise
            left[field] = f"{_short(values.pop(field))} ({error})"
    raise ImageParamsError("the settings cannot be read", field="params")


def _inputs(node: Mapping[str, Any]) -> Mapping[str, Any]:
    inputs = node.get("inputs")
    return inputs if isinstance(inputs, Mapping) else {}


def _node_at(nodes: Mapping[str, Mapping[str, Any]], link: object) -> Mapping[str, Any] | None:
    """The node a link [node id, output] points to."""
    if isinstance(link, list) and link and isinstance(link[0], str | int):
        return nodes.get(str(link[0]))
    return None


def _text_of(nodes: Mapping[str, Mapping[str, Any]], link: object) -> str:
    """The prompt text behind a conditioning link: the first text input found upstream."""
    for _ in range(_MAX_HOPS):
        node = _node_at(nodes, link)
        if node is None:
            return ""
        inputs = _inputs(node)
        for name in _TEXT_INPUTS:
            value = inputs.get(name)
            if isinstance(value, str):
                return value
            if isinstance(value, list):  # the text comes from another node (a string primitive)
                linked = _node_at(nodes, value)
                if linked is not None:
                    for candidate in _inputs(linked).values():
                        if isinstance(candidate, str):
                            return candidate
        link = inputs.get("conditioning", inputs.get("conditioning_1"))
    return ""


def _model_chain(
    nodes: Mapping[str, Mapping[str, Any]], link: object
) -> tuple[str | None, list[dict[str, Any]]]:
    """The checkpoint's file name and the LoRAs (name, weight) on the way to it."""
    loras: list[dict[str, Any]] = []
    for _ in range(_MAX_HOPS):
        node = _node_at(nodes, link)
        if node is None:
            break
        inputs = _inputs(node)
        name = inputs.get("ckpt_name", inputs.get("unet_name"))
        if isinstance(name, str):
            return name, loras[::-1]
        lora = inputs.get("lora_name")
        weight = inputs.get("strength_model", 1.0)
        if isinstance(lora, str) and _is_number(weight):
            loras.append({"name": _stem(lora), "weight": weight})
        link = inputs.get("model")
    return None, loras[::-1]


def _reached(nodes: Mapping[str, Mapping[str, Any]], start: str) -> set[str]:
    """Ids of the nodes the sampler's inputs lead to (bounded by the graph's size)."""
    seen: set[str] = set()
    todo = [start]
    while todo and len(seen) <= len(nodes):
        node = nodes.get(todo.pop())
        if node is None:
            continue
        for value in _inputs(node).values():
            if isinstance(value, list) and value and isinstance(value[0], str | int):
                key = str(value[0])
                if key not in seen and key in nodes:
                    seen.add(key)
                    todo.append(key)
    return seen


def _take_number(values: dict[str, Any], key: str, value: object, left: dict[str, str]) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        values[key] = value
    elif value is not None:
        left[key] = _short(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _stem(file_name: str) -> str:
    name = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, _suffix = name.rpartition(".")
    return stem if dot and stem else name


def _invoke_family(base: str) -> str | None:
    return _INVOKE_FAMILIES.get(base)


def _short(value: object) -> str:
    """A value for a one-line list of what did not come across."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:79] + "…"
