"""`tsatlas automations`: create the automations of deployments/automations.yaml on the Prefect
server that PREFECT_API_URL names, replacing any of the same name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tsatlas.errors import ConfigError

AUTOMATIONS = Path(__file__).resolve().parents[1] / "deployments" / "automations.yaml"


def specs(path: Path = AUTOMATIONS, within: int | None = None, notify_block_id: str | None = None) -> list[dict[str, Any]]:
    """The automations in `path`; `within` replaces each trigger's silence (seconds, also in the
    crash message), `notify_block_id` adds a notification through that block."""
    out = []
    for a in yaml.safe_load(path.read_text())["automations"]:
        if within is not None:
            old = a["trigger"]["within"]
            a["trigger"]["within"] = within
            for action in a["actions"]:
                if "message" in action:
                    action["message"] = re.sub(rf"\b{old} s\b", f"{within} s", action["message"])
        if notify_block_id:
            a["actions"].append({
                "type": "send-notification", "block_document_id": notify_block_id,
                "subject": "tsatlas: flow run {{ flow_run.name }} marked Crashed",
                "body": f"Flow run {{{{ flow_run.name }}}} sent no heartbeat for {a['trigger']['within']} s and was "
                        "marked Crashed by the automation " + a["name"] + "."})
        out.append(a)
    return out


def install(within: int | None = None, notify: str | None = None) -> list[tuple[str, str]]:
    """Create the automations (replacing same-named ones); returns (name, id) pairs.

    Args:
        within: seconds without a heartbeat before a run is marked Crashed (default: the file's).
        notify: a notification block, "block-type-slug/name" (e.g. slack-webhook/ops), to also notify.
    """
    from prefect.blocks.core import Block
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    block_id = None
    if notify:
        try:
            block_id = str(Block.load(notify)._block_document_id)
        except (ValueError, KeyError) as e:
            raise ConfigError(f"--notify {notify!r}: no such notification block ({e})") from None
    made = []
    with get_client(sync_client=True) as client:
        for spec in specs(within=within, notify_block_id=block_id):
            automation = AutomationCore.model_validate(spec)
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
            made.append((automation.name, str(client.create_automation(automation))))
    return made
