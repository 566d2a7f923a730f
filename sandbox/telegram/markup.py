"""Text formatting like the Bot API: parse_mode parsing into plain text + entities, limits."""

from __future__ import annotations

import re
from typing import Any, Final

from sandbox.telegram.errors import ApiError, bad_request

MAX_TEXT_LEN: Final[int] = 4096
MAX_CAPTION_LEN: Final[int] = 1024

HTML_TAG_ENTITY: Final[dict[str, str]] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
HTML_NAMED_ENTITIES: Final[dict[str, str]] = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
MAX_HTML_ENTITY_NAME_LEN: Final[int] = 10
MDV2_RESERVED: Final[str] = "_*[]()~`>#+-=|{}.!"
MDV2_ENTITY_NAMES: Final[dict[str, str]] = {
    "*": "Bold",
    "_": "Italic",
    "__": "Underline",
    "~": "Strikethrough",
    "||": "Spoiler",
    "[": "TextUrl",
    "![": "CustomEmoji",
}
MDV2_ENTITY_TYPES: Final[dict[str, str]] = {
    "*": "bold",
    "_": "italic",
    "__": "underline",
    "~": "strikethrough",
    "||": "spoiler",
}
MD_ENTITY_TYPES: Final[dict[str, str]] = {"*": "bold", "_": "italic"}

_HTML_SPECIAL = re.compile(r"[<&]")
_HTML_ATTR = re.compile(r"""([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_MDV2_PLAIN = re.compile(r"[^\\`*_~|\[\]()>#+\-={}.!\n]+")
_MD_PLAIN = re.compile(r"[^\\`*_\[]+")

Entity = dict[str, Any]


def utf16_len(text: str) -> int:
    """Return the length of `text` in UTF-16 code units, as Telegram counts offsets."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    """Return the UTF-8 byte offset of character `index` (used in error messages)."""
    return len(text[:index].encode())


def _entities_error(detail: str) -> ApiError:
    """Build the `can't parse entities` error."""
    return bad_request(f"can't parse entities: {detail}")


def command_entities(text: str) -> list[Entity]:
    """Return the `bot_command` entity for a text starting with `/`, like Telegram adds."""
    if not text.startswith("/") or len(text) < 2:
        return []
    end = len(text)
    for index, char in enumerate(text):
        if char.isspace():
            end = index
            break
    if end < 2:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(text[:end])}]


def _sorted(entities: list[Entity]) -> list[Entity]:
    """Order entities by offset, outer entities first."""
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return entities


def parse_html(text: str) -> tuple[str, list[Entity]]:
    """Parse Telegram HTML into plain text and entities, raising Telegram's parse errors."""
    out: list[str] = []
    pos = 0
    stack: list[tuple[str, int, str | None, dict[str, Any]]] = []
    entities: list[Entity] = []
    i = 0
    length = len(text)
    while i < length:
        match = _HTML_SPECIAL.search(text, i)
        if match is None:
            chunk = text[i:]
            out.append(chunk)
            pos += utf16_len(chunk)
            break
        j = match.start()
        if j > i:
            chunk = text[i:j]
            out.append(chunk)
            pos += utf16_len(chunk)
        if text[j] == "&":
            semi = text.find(";", j + 1, j + 2 + MAX_HTML_ENTITY_NAME_LEN)
            decoded = _decode_html_entity(text[j + 1 : semi]) if semi != -1 else None
            if decoded is None:
                out.append("&")
                pos += 1
                i = j + 1
            else:
                out.append(decoded)
                pos += utf16_len(decoded)
                i = semi + 1
            continue
        end = text.find(">", j + 1)
        if end == -1:
            raise _entities_error(f"Unclosed start tag at byte offset {_byte_offset(text, j)}")
        inner = text[j + 1 : end]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise _entities_error(f"Unexpected end tag at byte offset {_byte_offset(text, j)}")
            tag, start, entity_type, extra = stack.pop()
            if name != tag:
                raise _entities_error(
                    f"Unmatched end tag at byte offset {_byte_offset(text, j)}, "
                    f'expected "</{tag}>", found "</{name}>"'
                )
            if entity_type is not None and pos > start:
                entities.append(
                    {"type": entity_type, "offset": start, "length": pos - start, **extra}
                )
        else:
            stack.append(_open_html_tag(text, j, inner, stack, pos))
        i = end + 1
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), _sorted(entities)


def _decode_html_entity(name: str) -> str | None:
    """Decode a named or numeric HTML entity, or return None when unsupported."""
    if name in HTML_NAMED_ENTITIES:
        return HTML_NAMED_ENTITIES[name]
    try:
        if name.startswith(("#x", "#X")):
            return chr(int(name[2:], 16))
        if name.startswith("#"):
            return chr(int(name[1:]))
    except (ValueError, OverflowError):
        return None
    return None


def _open_html_tag(
    text: str,
    index: int,
    inner: str,
    stack: list[tuple[str, int, str | None, dict[str, Any]]],
    pos: int,
) -> tuple[str, int, str | None, dict[str, Any]]:
    """Validate a start tag and return its stack frame (tag, start, entity type, extras)."""
    body = inner.rstrip("/").strip()
    name, _, rest = body.partition(" ")
    name = name.lower()
    if name not in HTML_TAG_ENTITY:
        raise _entities_error(
            f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, index)}'
        )
    attrs: dict[str, str] = {}
    for m in _HTML_ATTR.finditer(rest):
        attrs[m.group(1).lower()] = next((g for g in m.groups()[1:] if g is not None), "")
    entity_type: str | None = HTML_TAG_ENTITY[name]
    extra: dict[str, Any] = {}
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise _entities_error(
            f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, index)}'
        )
    if name == "a":
        href = attrs.get("href", "")
        if href:
            extra["url"] = href
        else:
            entity_type = None
    elif name == "tg-emoji":
        extra["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif name == "blockquote" and "expandable" in rest.split():
        entity_type = "expandable_blockquote"
    elif name == "code" and stack and stack[-1][0] == "pre":
        language = attrs.get("class", "")
        if language.startswith("language-"):
            stack[-1][3]["language"] = language.removeprefix("language-")
        entity_type = None
    return name, pos, entity_type, extra


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    """Parse MarkdownV2 into plain text and entities, enforcing escaping like Telegram."""
    out: list[str] = []
    pos = 0
    stack: list[tuple[str, int, int]] = []
    entities: list[Entity] = []
    quote: tuple[int, str] | None = None
    i = 0
    length = len(text)
    while i < length:
        match = _MDV2_PLAIN.match(text, i)
        if match is not None:
            chunk = match.group()
            out.append(chunk)
            pos += utf16_len(chunk)
            i = match.end()
            continue
        char = text[i]
        at_line_start = i == 0 or text[i - 1] == "\n"
        if char == "\\":
            if i + 1 < length and 0 < ord(text[i + 1]) <= 126:
                out.append(text[i + 1])
                pos += 1
                i += 2
            else:
                out.append("\\")
                pos += 1
                i += 1
            continue
        if char == "\n":
            if quote is not None and not text.startswith((">", "**>"), i + 1):
                entities.append({"type": quote[1], "offset": quote[0], "length": pos - quote[0]})
                quote = None
            out.append("\n")
            pos += 1
            i += 1
            continue
        if at_line_start and (char == ">" or text.startswith("**>", i)):
            if quote is None:
                kind = "expandable_blockquote" if char == "*" else "blockquote"
                quote = (pos, kind)
            i += 3 if char == "*" else 1
            continue
        if char == "`":
            i, pos = _mdv2_code(text, i, out, pos, entities)
            continue
        if (
            quote is not None
            and quote[1] == "expandable_blockquote"
            and text.startswith("||", i)
            and (i + 2 == length or text[i + 2] == "\n")
        ):
            i += 2
            continue
        if char in "*_~|":
            marker = char
            if text.startswith("__", i):
                marker = "__"
            elif char == "|":
                if not text.startswith("||", i):
                    raise _reserved(char)
                marker = "||"
            opened = next((k for k in range(len(stack) - 1, -1, -1) if stack[k][0] == marker), None)
            if opened is None:
                stack.append((marker, pos, i))
            else:
                _, start, _ = stack.pop(opened)
                if pos > start:
                    entities.append(
                        {"type": MDV2_ENTITY_TYPES[marker], "offset": start, "length": pos - start}
                    )
            i += len(marker)
            continue
        if char == "[" or text.startswith("![", i):
            marker = "[" if char == "[" else "!["
            stack.append((marker, pos, i))
            i += len(marker)
            continue
        if char == "]" and stack and stack[-1][0] in ("[", "!["):
            marker, start, start_index = stack.pop()
            if not text.startswith("(", i + 1):
                raise _entities_error(
                    f"Can't find end of {MDV2_ENTITY_NAMES[marker]} entity at byte offset "
                    f"{_byte_offset(text, start_index)}"
                )
            url, i = _mdv2_url(text, i + 2)
            if pos > start:
                if marker == "[":
                    entity = {
                        "type": "text_link",
                        "offset": start,
                        "length": pos - start,
                        "url": url,
                    }
                else:
                    emoji_id = url.partition("id=")[2]
                    entity = {
                        "type": "custom_emoji",
                        "offset": start,
                        "length": pos - start,
                        "custom_emoji_id": emoji_id,
                    }
                entities.append(entity)
            continue
        if char in MDV2_RESERVED:
            raise _reserved(char)
        out.append(char)
        pos += utf16_len(char)
        i += 1
    if quote is not None:
        entities.append({"type": quote[1], "offset": quote[0], "length": pos - quote[0]})
    if stack:
        marker, _, start_index = stack[-1]
        raise _entities_error(
            f"Can't find end of {MDV2_ENTITY_NAMES[marker]} entity at byte offset "
            f"{_byte_offset(text, start_index)}"
        )
    return "".join(out), _sorted(entities)


def _reserved(char: str) -> ApiError:
    """Build the MarkdownV2 error for an unescaped reserved character."""
    return _entities_error(
        f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
    )


def _mdv2_code(
    text: str, index: int, out: list[str], pos: int, entities: list[Entity]
) -> tuple[int, int]:
    """Consume an inline code or pre block starting at `index`; return new index and pos."""
    is_pre = text.startswith("```", index)
    fence = "```" if is_pre else "`"
    i = index + len(fence)
    language = ""
    if is_pre:
        newline = text.find("\n", i)
        first_line = text[i:newline] if newline != -1 else ""
        if first_line and not any(c.isspace() or c == "`" for c in first_line):
            language = first_line
            i = newline + 1
    content: list[str] = []
    length = len(text)
    while i < length:
        if text[i] == "\\" and i + 1 < length and 0 < ord(text[i + 1]) <= 126:
            content.append(text[i + 1])
            i += 2
            continue
        if text.startswith(fence, i):
            chunk = "".join(content)
            if chunk:
                entity: Entity = {
                    "type": "pre" if is_pre else "code",
                    "offset": pos,
                    "length": utf16_len(chunk),
                }
                if language:
                    entity["language"] = language
                entities.append(entity)
            out.append(chunk)
            return i + len(fence), pos + utf16_len(chunk)
        content.append(text[i])
        i += 1
    name = "Pre" if is_pre else "Code"
    raise _entities_error(
        f"Can't find end of {name} entity at byte offset {_byte_offset(text, index)}"
    )


def _mdv2_url(text: str, index: int) -> tuple[str, int]:
    """Read a link URL up to the closing parenthesis; return it and the index after it."""
    parts: list[str] = []
    i = index
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            parts.append(text[i + 1])
            i += 2
            continue
        if char == ")":
            return "".join(parts), i + 1
        parts.append(char)
        i += 1
    raise _entities_error(f"Can't find end of a URL at byte offset {_byte_offset(text, index)}")


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Parse legacy Markdown (bold, italic, code, pre, links) into plain text and entities."""
    out: list[str] = []
    pos = 0
    entities: list[Entity] = []
    i = 0
    length = len(text)
    while i < length:
        match = _MD_PLAIN.match(text, i)
        if match is not None:
            chunk = match.group()
            out.append(chunk)
            pos += utf16_len(chunk)
            i = match.end()
            continue
        char = text[i]
        if char == "\\" and i + 1 < length and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            pos += 1
            i += 2
            continue
        if char == "\\":
            out.append(char)
            pos += 1
            i += 1
            continue
        fence = "```" if text.startswith("```", i) else char
        closing = "](" if char == "[" else fence
        end = text.find(closing, i + len(fence))
        if end == -1:
            raise _entities_error(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
            )
        inner = text[i + len(fence) : end]
        entity: Entity = {"type": "", "offset": pos, "length": utf16_len(inner)}
        if char == "[":
            url_end = text.find(")", end + 2)
            if url_end == -1:
                raise _entities_error(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            entity.update(type="text_link", url=text[end + 2 : url_end])
            i = url_end + 1
        else:
            entity["type"] = "pre" if fence == "```" else MD_ENTITY_TYPES.get(char, "code")
            i = end + len(fence)
        if inner:
            entities.append(entity)
        out.append(inner)
        pos += utf16_len(inner)
    return "".join(out), _sorted(entities)


def parse_text(
    text: str, parse_mode: str | None, explicit_entities: list[Entity] | None = None
) -> tuple[str, list[Entity]]:
    """Turn `text` + `parse_mode` into (plain text, entities) the way Telegram stores it."""
    if not parse_mode:
        return text, list(explicit_entities or [])
    mode = parse_mode.lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    raise bad_request("unsupported parse_mode")
