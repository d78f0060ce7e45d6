"""The Chat page: conversations, a streaming transcript, and the model panel.

`ChatPage` (in `ui.chat.page`) is what the main window shows; the other modules are its parts:
`conversation_list`, `transcript` (`message_widget`, `message_body`, `markdown`,
`sources_view`), `composer`, `model_panel` (`load_form`, `remote_form`, `sampling_form`,
`template_picker`), `prompt_dialog` and `source_viewer` (where a cited file opens).
"""
