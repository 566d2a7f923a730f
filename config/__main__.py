"""Print the environment keys as the README's markdown table: `python -m config`."""

from config.settings import ENV_KEYS


def markdown_table() -> str:
    """Return every env key as one markdown table row, required keys first."""
    rows = ["| Key | Required | Default | Description |", "|---|---|---|---|"]
    for key in ENV_KEYS:
        default = "" if key.required else (f"`{key.default}`" if key.default else "(derived)")
        secret = " Secret." if key.secret else ""
        rows.append(f"| `{key.name}` | {'yes' if key.required else 'no'} | {default} | "
                    f"{key.description}{secret} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
