"""The generation form: one engine that fills any catalog model's typed inputs in a chat.

Pure logic (no aiogram types, no I/O): `values` parses what the user sends, `engine` moves
the form (JSON data kept in the FSM), `screens` says what to show.
"""
