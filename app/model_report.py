"""A model's facts as plain data: what `modeldeck info --json` prints and the window shows.

Kept apart from the CLI so that starting the window or parsing arguments does not import
file analysis, the license table or psutil.
"""

from __future__ import annotations

from typing import Any

from app.hardware import MachineMemory
from app.hub.models import AccessStatus, Gating, ModelDetails, ModelSummary
from app.hub.repo_files import diffusers_layout, group_gguf_models, parse_quantization
from app.hub.security import FileScan, worst
from app.licenses import license_info
from app.llm.fit import FitEstimate, estimate_file_fit

# What `info` prints for the access check and the gate: words, not enum values (the JSON
# keeps the values, which scripts compare).
ACCESS_TEXT = {
    AccessStatus.GRANTED: "yes",
    AccessStatus.NO_TOKEN: "no access (token needed)",
    AccessStatus.DENIED: "no access (request it on the hub page)",
    AccessStatus.UNKNOWN: "unknown (could not ask the hub)",
}
GATING_TEXT = {
    Gating.OPEN: "no",
    Gating.AUTO: "yes (access is granted when you accept the terms)",
    Gating.MANUAL: "yes (the authors review each request)",
}


def access_text(access: str) -> str:
    """`AccessStatus` value -> what a person reads ("no access (token needed)")."""
    try:
        return ACCESS_TEXT[AccessStatus(access)]
    except ValueError:
        return access


def gating_text(gated: str) -> str:
    """`Gating` value -> what a person reads."""
    try:
        return GATING_TEXT[Gating(gated)]
    except ValueError:
        return gated


def describe_model(
    details: ModelDetails, access: AccessStatus, memory: MachineMemory, *, context_length: int
) -> dict[str, Any]:
    """The `info` report as plain data: license, gating, files with quantization and fit."""
    license_ = license_info(
        details.license_id, license_name=details.license_name, license_link=details.license_link
    )
    fits: dict[str, FitEstimate] = {}
    gguf_models = group_gguf_models(details.files)
    for model in gguf_models:
        if model.size is None or model.is_projector:
            continue
        estimate = estimate_file_fit(
            model.size, model.quantization, memory, context_length=context_length
        )
        for part in model.parts:
            fits[part.path] = estimate
    layout = diffusers_layout(details.files)
    scans = {file.path: details.scan_of(file.path) for file in details.files}
    security = details.security
    return {
        "id": details.repo_id,
        "url": details.url,
        "sha": details.sha,
        "last_modified": details.last_modified.isoformat() if details.last_modified else None,
        "offline_copy_from": details.saved_at.isoformat() if details.saved_at else None,
        "task": details.task,
        "library": details.library,
        "tags": list(details.tags),
        "base_models": list(details.base_models),
        "downloads": details.downloads,
        "likes": details.likes,
        "gated": details.gating.value,
        "access": access.value,
        "license": {
            "id": license_.id,
            "name": license_.name,
            "category": license_.category.value,
            "commercial_use": license_.commercial_use.value,
            "commercial_condition": license_.commercial_condition,
            "summary": license_.summary,
            "url": license_.url,
            "license_file": details.license_file.path if details.license_file else None,
        },
        "diffusers": (
            {
                "variants": list(layout.variants),
                "safetensors": layout.has_safetensors,
                "pickle": layout.has_pickle,
            }
            if layout.is_pipeline
            else None
        ),
        # The hub's malware and pickle scans; "reported": false for a hub that sends none
        # (every file is then "not scanned", never "safe").
        "security": {
            "reported": security is not None,
            "scans_done": security.scans_done if security is not None else False,
            "flagged": [path for path, scan in scans.items() if scan.level.flagged],
        },
        "context_length_for_fit": context_length,
        # GGUF files as runnable models: the parts of a split model together (as the window's
        # Files tab groups them), best quality first.
        "gguf_models": [
            {
                "name": model.name,
                "path": model.path,
                "parts": [part.path for part in model.parts],
                "size": model.size,
                "quantization": model.quantization,
                "complete": model.is_complete,
                "projector": model.is_projector,
                "fit": fits[model.path].fit.value if model.path in fits else None,
                "scan": scan_json(worst([scans[part.path] for part in model.parts])),
            }
            for model in gguf_models
        ],
        "files": [
            {
                "path": file.path,
                "size": file.size,
                "sha256": file.sha256,
                "quantization": parse_quantization(file.name)
                if file.name.lower().endswith(".gguf")
                else None,
                "fit": fits[file.path].fit.value if file.path in fits else None,
                "fit_detail": fits[file.path].explanation if file.path in fits else None,
                "scan": scan_json(scans[file.path]),
            }
            for file in details.files
        ],
    }


def scan_json(scan: FileScan) -> dict[str, str]:
    """A file's verdict from the hub's scans: {"level": "unsafe", "finding": "antivirus: …"}."""
    return {"level": scan.level.value, "finding": scan.finding}


def security_text(security: dict[str, Any]) -> str:
    """What `info` says about the hub's scans in one line."""
    if not security["reported"]:
        return 'not reported by this hub (files show "not scanned")'
    flagged = security["flagged"]
    done = "done" if security["scans_done"] else "not finished"
    if not flagged:
        return f"{done}; no file flagged suspicious or unsafe"
    count = len(flagged)
    return f"{done}; {count} file{'s' if count != 1 else ''} flagged: {', '.join(flagged)}"


def summary_json(item: ModelSummary) -> dict[str, Any]:
    """One search result as JSON-ready data."""
    return {
        "id": item.repo_id,
        "task": item.task,
        "library": item.library,
        "downloads": item.downloads,
        "likes": item.likes,
        "license": item.license_id,
        "gated": item.gating.value,
        "last_modified": item.last_modified.isoformat() if item.last_modified else None,
    }
