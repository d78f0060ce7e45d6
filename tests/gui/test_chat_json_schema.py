"""The Chat page's "JSON schema" box: replies constrained to JSON valid against it, with the
real engine and the tiny scripted GGUF (which answers "Quick fox." unless a grammar says
otherwise)."""

from __future__ import annotations

import json

from pytestqt.qtbot import QtBot

from app.chat.conversations import MessageState
from tests.gui.test_chat_page import REPLY_TIMEOUT_MS, load, send
from tests.support.gguf_builder import SCRIPTED_REPLY, ScriptedGgufs
from ui.chat.page import ChatPage

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"enum": ["red", "green", "blue"]}, "count": {"type": "integer"}},
    "required": ["colour", "count"],
}


def test_a_schema_in_the_sampling_settings_makes_replies_json(
    qtbot: QtBot, chat: ChatPage, ggufs: ScriptedGgufs
) -> None:
    page = chat
    load(qtbot, page, ggufs.scripted_4k, max_tokens=200)
    form = page.panel.sampling

    # A schema the grammar cannot express is named under the box, and refused on send.
    form.json_schema.setPlainText('{"type": "colour"}')
    assert form.json_schema_problem.isVisibleTo(form)
    assert "not supported" in form.json_schema_problem.text()
    page.composer.editor.setPlainText("Pick a colour")
    with qtbot.waitSignal(page.said, timeout=10_000) as said:
        page.composer.send_button.click()
    assert "Check the sampling settings" in said.args[0]

    form.json_schema.setPlainText(json.dumps(SCHEMA, indent=2))
    assert not form.json_schema_problem.isVisibleTo(form)
    assert form.sampling().json_schema == json.dumps(SCHEMA, indent=2)
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS) as finished:
        send(qtbot, page, "Pick a colour")
    assert finished.args == ["complete"]
    reply = page.transcript.messages()[-1]
    assert reply.state is MessageState.COMPLETE
    document = json.loads(reply.content)
    assert document["colour"] in ("red", "green", "blue")
    assert isinstance(document["count"], int)

    # Cleared, replies are free text again; the setting travels with presets.
    preset = form.to_preset()
    form.json_schema.setPlainText("")
    assert form.sampling().json_schema is None
    with qtbot.waitSignal(page.replyFinished, timeout=REPLY_TIMEOUT_MS):
        send(qtbot, page, "Again")
    assert page.transcript.messages()[-1].content == SCRIPTED_REPLY
    form.apply_preset(preset)
    assert json.loads(form.json_schema.toPlainText()) == SCHEMA
