"""Message rendering with jinja2: ``config/templates/{audience}.{lang}.j2`` define a
``subject`` and a ``body`` block; ``messages.yaml`` holds the type names and advice per language.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

AUDIENCES = ("manager", "customer", "storm")
LANGUAGES = ("zh", "en")


class TemplateError(ValueError):
    """A template is missing or broken; the message names the file."""


class Templates:
    """Loads and checks every template once; ``render`` returns ``(subject, body)``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise TemplateError(f"{self.folder}: template folder does not exist")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.folder)),
            undefined=jinja2.StrictUndefined, autoescape=False,
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
        )
        try:
            self.messages: dict[str, Any] = yaml.safe_load(
                (self.folder / "messages.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TemplateError(f"{self.folder / 'messages.yaml'}: {exc}") from None
        self._templates: dict[tuple[str, str], jinja2.Template] = {}
        for audience in AUDIENCES:
            for lang in LANGUAGES:
                name = f"{audience}.{lang}.j2"
                try:
                    tmpl = self.env.get_template(name)
                except jinja2.TemplateNotFound:
                    raise TemplateError(f"{self.folder / name}: template is missing") from None
                except jinja2.TemplateSyntaxError as exc:
                    raise TemplateError(f"{self.folder / name}: line {exc.lineno}: {exc.message}"
                                        ) from None
                missing = {"subject", "body"} - set(tmpl.blocks)
                if missing:
                    raise TemplateError(f"{self.folder / name}: needs blocks subject and body "
                                        f"(missing {', '.join(sorted(missing))})")
                self._templates[(audience, lang)] = tmpl

    def render(self, audience: str, lang: str, context: dict[str, Any]) -> tuple[str, str]:
        lang = lang if lang in LANGUAGES else "zh"
        tmpl = self._templates[(audience, lang)]
        msgs = self.messages.get(lang, {})
        ctx = {"names": msgs.get("names", {}), "advice": msgs.get("advice", {}),
               "sev": msgs.get("severity", {}), "state": msgs.get("state", {})} | context
        try:
            jctx = tmpl.new_context(ctx)
            subject = "".join(tmpl.blocks["subject"](jctx)).strip()
            body = "".join(tmpl.blocks["body"](jctx)).strip() + "\n"
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{self.folder}/{audience}.{lang}.j2: {exc}") from None
        return " ".join(subject.split()), body
