"""What a person types in the history search box, and the filters beside it, as SQL over history_items.

Query rules (the same for a list, a count and the runs):

- Empty or only spaces: no text filter.
- Otherwise the text is folded (NFKC, then case-folded: "ＬＩＳＢＯＮ" and "Straße" read as "lisbon" and
  "strasse") and split into words: runs of letters and digits. Every word must occur, in any order,
  as the start of a word of the prompt: "lisb rain" finds "A red tram in Lisbon, rainy evening".
  The full-text index also ignores diacritics ("cafe" finds "Café", "lisboa" finds "Lisboa").
- Everything else is punctuation and is ignored when there are words. FTS syntax (`"`, `*`, `:`, `^`,
  `(`, `NEAR`, `AND`, `OR`, `NOT`, `-`) is never syntax: each word is sent as a quoted prefix term of
  the prompt column, so "NOT fox" asks for prompts with a word starting "not" and one starting "fox".
- Only the first MAX_WORDS (64) distinct words count: a bound on the work one query can ask for,
  and on SQLite's expression depth in the fallback below.
- Text without a letter or digit ("%", "-", "()") is matched literally, as a substring of the
  folded prompt: a lone punctuation mark finds the prompts that contain it, never everything.

Without FTS5 (history_schema.fts5_available) each word is matched as a substring of the folded
prompt instead of a word prefix (a superset), and diacritics count.

On PostgreSQL the same rules hold through a tsvector: `index_words` splits the folded prompt, its
diacritics removed, into the same words FTS5 keeps, stored as `words`; a query becomes a tsquery of
quoted prefix terms ('lisb':* & 'rain':*). Quoted lexemes are read literally, never as syntax.

Dates: `since` (inclusive) and `until` (exclusive) are timezone-aware datetimes; `period_start`
turns "today" (since 00:00 UTC), "7 days" or "30 days" into a `since`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = [
    "MAX_WORDS",
    "Filters",
    "Period",
    "SearchMode",
    "fold",
    "fts_query",
    "index_words",
    "period_start",
    "search_words",
    "ts_query",
]

Period = Literal["today", "7 days", "30 days"]
#: How words are matched: SQLite's FTS5 index, PostgreSQL's tsvector, or substrings (SQLite sans FTS5).
SearchMode = Literal["fts5", "tsvector", "like"]
_PERIOD_DAYS = {"7 days": 7, "30 days": 30}
#: Letters and digits: what SQLite's unicode61 tokenizer keeps as a word (underscore is a separator).
_WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 64
_FTS_MATCH = "seq IN (SELECT rowid FROM history_fts WHERE history_fts MATCH ?)"
_TS_MATCH = "words @@ CAST(? AS tsquery)"
#: PostgreSQL refuses a lexeme over 2 046 bytes; a longer word is kept as its prefix (a prompt is at
#: most 4 000 characters, so this can only be one unbroken run of letters).
_MAX_LEXEME_BYTES = 2000


def fold(text: str) -> str:
    """The comparable form of a prompt or a query; stored as history_items.prompt_folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def search_words(query: str) -> list[str]:
    """The query's words, folded, each once (all are required, so a repeat adds nothing)."""
    return list(dict.fromkeys(_WORD.findall(fold(query))))[:MAX_WORDS]


def _without_marks(text: str) -> str:
    """Diacritics removed, as FTS5's `remove_diacritics 2` does: "café" reads as "cafe"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _lexeme(word: str) -> str:
    return word.encode()[:_MAX_LEXEME_BYTES].decode(errors="ignore")


def index_words(prompt: str) -> list[str]:
    """The words a PostgreSQL search finds `prompt` by: folded, without diacritics, each once."""
    # Split first, then marks removed, as for a query (ts_query): both see the same words.
    return list(dict.fromkeys(_lexeme(_without_marks(word)) for word in _WORD.findall(fold(prompt))))


def ts_query(words: list[str]) -> str:
    """A tsquery in PostgreSQL's input syntax: every word required, as a prefix ('lisb':* & 'rain':*).

    Each word is a quoted lexeme, read literally; quotes and backslashes (never in a word, which is
    letters and digits) are escaped all the same, whatever a caller passes.
    """
    terms = [_lexeme(_without_marks(word)) for word in words]
    return " & ".join("'" + term.replace("\\", "\\\\").replace("'", "''") + "':*" for term in terms)


def fts_query(owner_key: str, words: list[str]) -> str:
    """An FTS5 MATCH expression: the owner's rows whose prompt has every word as a prefix,
    'owner : "<key>" AND prompt_folded : ("lisb"* "rain"*)'.

    Inside double quotes FTS5 reads every character literally; a word never contains one (it is
    letters and digits), but doubling them keeps this safe whatever a caller passes.
    """
    terms = " ".join(_quoted(word) + "*" for word in words)
    return f"owner : {_quoted(owner_key)} AND prompt_folded : ({terms})"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def period_start(period: Period, now: datetime | None = None) -> datetime:
    """The `since` of a quick filter: "today" is since 00:00 UTC (as the spend cap counts a day)."""
    now = now or datetime.now(UTC)
    if period == "today":
        return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return now - timedelta(days=_PERIOD_DAYS[period])


@dataclass(frozen=True)
class Filters:
    """The search box and filters; `where` is the SQL that selects a person's live items by them."""

    query: str = ""
    provider: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("since and until must be timezone-aware datetimes (e.g. in UTC)")

    def where(self, owner_key: str, *, search: SearchMode) -> tuple[str, tuple[object, ...]]:
        """Conditions on history_items (unqualified columns), always on the owner and never trashed."""
        clauses, params = ["owner = ?", "deleted_at IS NULL"], list[object]([owner_key])
        if self.provider is not None:
            # No provider's name has a NUL, and PostgreSQL refuses one in any text it is sent.
            clauses.append("provider = ?" if "\x00" not in self.provider else "0 = 1")
            params += [self.provider] if "\x00" not in self.provider else []
        if self.since is not None:
            clauses.append("created_at >= ?")
            params.append(self.since.timestamp())
        if self.until is not None:
            clauses.append("created_at < ?")
            params.append(self.until.timestamp())
        text, text_params = self._text_condition(owner_key, search)
        clauses += text
        return " AND ".join(clauses), (*params, *text_params)

    def _text_condition(self, owner_key: str, search: SearchMode) -> tuple[list[str], list[object]]:
        query = self.query.replace("\x00", "").strip()  # never in a prompt; PostgreSQL refuses it
        if not query:
            return [], []
        words = search_words(query)
        if not words:  # only punctuation: the literal text
            return [_LIKE], [_substring(fold(query))]
        if search == "fts5":
            return [_FTS_MATCH], [fts_query(owner_key, words)]
        if search == "tsvector":
            return [_TS_MATCH], [ts_query(words)]
        return [_LIKE] * len(words), [_substring(word) for word in words]


_LIKE = "prompt_folded LIKE ? ESCAPE '\\'"


def _substring(text: str) -> str:
    # SQLite's LIKE folds ASCII only, hence the folded column; escaped so "100%" and "a_b" are literal.
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"
