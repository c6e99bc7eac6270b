"""``PromptInjectionScreen``: instructions aimed at the model, hidden in retrieved text.

Indirect prompt injection puts text into a document that a RAG application will later
hand to a model: "ignore previous instructions", a note "to any AI reading this", a
chat-template token, an image URL that smuggles the conversation out, all of it often
hidden from the human reader (zero-width or bidi control characters, Unicode tag
characters, HTML comments, ``display:none``, white-on-white text).

The screen scores a chunk on independent *signals* and flags it when the sum of the
strongest weight per signal reaches ``threshold`` (1.0). Strong signals (an override
phrase, role tokens, bidi controls, a templated exfiltration URL, ...) weigh 1.0 each;
weak ones (a short hidden element, a vocative "assistant," without a directive, a
plain image URL with a query string) weigh less and only count together. The reason
lists the signal names, never the text.

Phrases are matched on a normalised copy of the text: invisible characters removed,
Unicode tag characters decoded, NFKC, common Cyrillic/Greek look-alikes mapped to Latin,
case folded, whitespace collapsed. It is a pattern screen: it catches the injections
seen in the wild and in ``tests/data/injection_corpus.jsonl``, not paraphrases it has
never seen; measured precision and recall are in ``docs/screens-and-budgets.md``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragguard.screens._base import CLEAN, ScreenAction, ScreenResult

if TYPE_CHECKING:
    from ragguard.results import Hit

__all__ = ["PromptInjectionScreen", "Signal"]

DEFAULT_MAX_CHARS = 200_000


@dataclass(frozen=True)
class Signal:
    """One piece of evidence: what was found (``name``) and how much it weighs."""

    name: str
    weight: float


# -- invisible characters -------------------------------------------------------------

_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# A subdivision flag (e.g. Scotland) is U+1F3F4, tag letters, U+E007F: legitimate.
_FLAG_SEQUENCE = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")
_TAG_CHARACTERS = re.compile("[\U000e0000-\U000e007f]")
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u180e\ufeff"
_ZERO_WIDTH_RE = re.compile(f"[{_ZERO_WIDTH}]")
# Invisible characters dropped before phrase matching (zero-width, bidi, marks).
_INVISIBLE = re.compile(f"[{_ZERO_WIDTH}\u200e\u200f\u202a-\u202e\u2066-\u2069\u00ad]")

# Cyrillic and Greek look-alikes of Latin letters, mapped to the letter they imitate:
# they dodge keyword filters ("ignore" spelt with a Cyrillic i and o).
_CONFUSABLES = str.maketrans(
    "\u0430\u0432\u0435\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443\u0445"
    "\u0455\u0456\u0458\u0501\u0261\u04cf\u0410\u0412\u0415\u041a\u041c\u041d"
    "\u041e\u0420\u0421\u0422\u0423\u0425\u0405\u0406\u0408\u03b1\u03bf\u03c1"
    "\u03bd\u03b9\u03ba\u03c4\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c"
    "\u039d\u039f\u03a1\u03a4\u03a5\u03a7",
    "abekmhopctyxsijdglABEKMHOPCTYXSIJaopviktABEZHIKMNOPTYX",
)
_MIXED_SCRIPT_WORD = re.compile(
    r"\b(?=\w*[a-zA-Z])(?=\w*[\u0370-\u03ff\u0400-\u04ff])\w+\b", re.UNICODE
)

# -- phrases aimed at the model (matched on normalised, lower-case text) ---------------

_F = re.IGNORECASE
_W = r"(?:[\w'-]+[\s:,;]+)"  # one word and the gap after it
_TARGET = (
    r"(?:instructions?|directions?|directives?|prompts?|rules|guidelines|guidance|context|"
    r"commands?|orders|configuration|programming|constraints)"
)
_QUALIFIER = r"(?:previous|prior|above|earlier|preceding|original|initial|former|foregoing|existing|system|your|older)"
_MODEL = (
    r"(?:ai|a\.i\.|llms?|language\s+models?|chatbots?|assistants?|models?|bots?|gpts?|copilots?|agents?|"
    r"automated\s+(?:reviewers?|systems?|tools?|agents?|readers?|assistants?)|(?:ki|ia)(?:-[\w-]+)?)"
)
_SET_ASIDE = (
    r"(?:ignore|disregard|forget|skip|override|bypass|neglect|discard|drop|abandon|overlook|"
    r"set\s+aside|put\s+aside|throw\s+out|pay\s+no\s+attention\s+to)"
)
_GIVEN = (
    r"(?:you\s+(?:were|have\s+been)\s+(?:given|told|following|using)|you\s+(?:received|got)|"
    r"you\s+(?:normally\s+|usually\s+|always\s+)?follow|"
    r"given\s+to\s+you|(?:written\s+)?above|so\s+far)"
)
_STALE = (
    r"(?:ignored|void|outdated|out\s+of\s+date|obsolete|invalid|superseded|revoked|replaced|"
    r"no\s+longer\s+(?:apply|applies|valid|current|in\s+force)|(?:don't|do\s+not|does\s+not|doesn't)\s+apply)"
)

# A phrase pattern with its *needles*: literal words of which at least one occurs in
# every match. A pattern runs only when one of its needles is in the text, so a clean
# chunk costs a few substring searches, not dozens of regex scans (tests check the
# needles against every match in the labelled corpus).
_SET_ASIDE_NEEDLES = (
    "ignor", "disregard", "forget", "skip", "overrid", "bypass", "neglect", "discard",
    "drop", "abandon", "overlook", "aside", "throw", "attention",
)  # fmt: skip
_CONCEAL_VERBS = ("tell", "inform", "mention", "reveal", "disclos", "show", "notify", "let")
_EXTRACT_VERBS = (
    "print", "reveal", "repeat", "output", "show", "display", "disclos", "share", "write",
    "leak", "dump", "recite", "list", "quote", "paste", "copy",
)  # fmt: skip

# Each of these alone is enough evidence (weight 1.0).
_STRONG_PATTERNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # set aside the previous instructions
    (
        "instruction override",
        _SET_ASIDE_NEEDLES,
        rf"\b{_SET_ASIDE}\b[\s:,]+{_W}{{0,4}}?{_QUALIFIER}[\s,]+{_W}{{0,2}}?{_TARGET}\b",
    ),
    (
        "instruction override",
        _SET_ASIDE_NEEDLES,
        rf"\b{_SET_ASIDE}\b[\s:,]+{_W}{{0,3}}?{_TARGET}\s+{_GIVEN}",
    ),
    (
        "instruction override",
        ("ignor", "disregard", "forget"),
        r"\b(?:ignore|disregard|forget)\s+(?:everything|anything|all(?:\s+of)?(?:\s+(?:that|this))?)\s+"
        r"(?:(?:written|said|stated|mentioned|you\s+(?:were\s+told|read))\s+)?"
        r"(?:above|before|prior|previously|so\s+far|earlier)\b",
    ),
    (
        "instruction override",
        ("follow", "obey", "listen", "adher"),
        rf"\b(?:do\s+not|don't|stop|no\s+longer)\s+(?:follow|obey|listen(?:ing)?\s+to|adher\w*\s+to)\w*\s+"
        rf"{_W}{{0,2}}?(?:previous|prior|original|initial|earlier|system|above|your)\s+{_W}{{0,1}}?{_TARGET}",
    ),
    (
        "instruction override",
        ("given", "told", "follow", "using", "received", "got", "above", "far"),
        rf"\b{_TARGET}\s+{_GIVEN}\b[^.\n]{{0,80}}?\b{_STALE}",
    ),
    (
        "instruction override",
        ("previous", "prior", "earlier", "original"),
        rf"\b(?:your|the\s+assistant's|the\s+model's)?\s*(?:previous|prior|earlier|original)\s+"
        rf"{_TARGET}\s+(?:are|is)\s+(?:now\s+)?(?:suspended|cancel+ed|{_STALE})",
    ),
    (
        "instruction override",
        ("everything",),
        rf"\beverything\s+(?:you\s+(?:have\s+been|were)\s+told|above|before\s+this)\b[^.\n]{{0,60}}?"
        rf"\b(?:was\s+a\s+test|is\s+(?:void|fake|false|wrong)|{_STALE})",
    ),
    (
        "instruction override",
        ("retrieved", "provided", "supplied"),
        rf"\b{_SET_ASIDE}\s+(?:the\s+)?(?:retrieved|provided|supplied)\s+(?:documents?|context|content|text|sources)",
    ),
    (
        "instruction override",
        ("decode",),
        r"\b(?:decode|base64[- ]decode)\b[^.\n]{0,80}\b(?:follow|execute|obey|run|apply)\b",
    ),
    # the same in a few other languages
    (
        "instruction override",
        ("ignorier", "vergiss", "vergessen"),
        r"\b(?:ignorier\w*|vergiss|vergessen\s+sie)\s+(?:alle\s+|die\s+)?"
        r"(?:vorherigen|bisherigen|obigen|fr[üu]heren|vorangegangenen)\s+(?:anweisungen|instruktionen|regeln|befehle)",
    ),
    (
        "instruction override",
        ("ignore", "oublie"),
        r"\b(?:ignore[zr]?|oublie[zr]?)\s+(?:toutes\s+)?(?:les\s+|tes\s+|vos\s+)?(?:instructions|consignes|directives|r[èe]gles)\s+"
        r"(?:pr[ée]c[ée]dentes|ant[ée]rieures|ci-dessus)",
    ),
    (
        "instruction override",
        ("ignor", "olvid", "esque", "dimentica"),
        r"\b(?:ignor[ae]\w*|olvid[ae]\w*|esque[cç]a\w*|dimentica\w*)\s+(?:todas\s+|tutte\s+)?(?:las\s+|le\s+|as\s+)?"
        r"(?:instrucciones|istruzioni|instru[çc][õo]es)\s+(?:anteriores|previas|precedenti)",
    ),
    # hide it from the user
    (
        "concealment from the user",
        _CONCEAL_VERBS,
        r"\b(?:do\s+not|don't|never)\s+(?:tell|inform|mention|reveal|disclose|show|notify|let\s+on\s+to)\s+"
        r"(?:(?:this|it|that|these|them|where|how|why)\b[\w\s']{0,30}?\s+)?(?:to\s+)?(?:the\s+|your\s+)?"
        r"(?:user|customer|reader|human|requester)s?\b",
    ),
    (
        "concealment from the user",
        ("let",),
        r"\b(?:do\s+not|don't|never)\s+let\s+(?:the\s+|your\s+)?(?:user|customer|reader|human)s?\s+(?:know|see|find\s+out|notice)",
    ),
    (
        "concealment from the user",
        ("without",),
        r"\bwithout\s+(?:telling|informing|notifying|alerting|letting)\s+(?:the\s+|your\s+)?(?:user|customer|reader|human)",
    ),
    (
        "concealment from the user",
        ("keep", "hide"),
        r"\b(?:keep|hide)\s+(?:this|these|the)\s+(?:instructions?|message|note|text|comment)\s+(?:secret|hidden)\s+from\b",
    ),
    (
        "concealment from the user",
        ("user", "customer", "reader"),
        r"\bthe\s+(?:user|customer|reader)\s+(?:must|should|shall|may)\s+(?:not|never)\s+(?:know|see|learn|find\s+out|be\s+told)",
    ),
    (
        "concealment from the user",
        ("mention", "reveal", "disclos", "acknowledg"),
        r"\b(?:do\s+not|don't|never)\s+(?:mention|reveal|disclose|acknowledge)\s+this\s+"
        r"(?:note|instruction|comment|message|text|postscript|p\.?s\.?)",
    ),
    # leak the prompt
    (
        "prompt extraction",
        _EXTRACT_VERBS,
        r"\b(?:print|reveal|repeat|output|show|display|disclose|share|write\s+out|leak|dump|recite|list|quote|paste|copy)\s+"
        r"(?:\w+\s+){0,3}?(?:system\s+(?:prompt|message)|(?:hidden|initial|original|secret|internal|system)\s+(?:instructions|prompt|rules)|"
        rf"(?:the\s+)?{_TARGET}\s+(?:and\s+\w+\s+)?(?:you\s+(?:were|have\s+been)\s+given|you\s+(?:are|were)\s+(?:operating|running|working)\s+under|above)|"
        r"your\s+(?:instructions|prompt|rules|configuration))",
    ),
    (
        "prompt extraction",
        ("before", "above", "preceding"),
        r"\b(?:text|everything|instructions?|words?)\s+(?:that\s+(?:appears?|comes?|came)\s+)?"
        r"(?:before|above|preceding)\s+(?:the\s+user'?s|my|this|the\s+first)\s+(?:first\s+)?(?:message|question)",
    ),
    # a new persona or new powers
    (
        "persona hijack",
        ("now",),
        r"\byou\s+are\s+now\s+(?:an?\s+|the\s+|in\s+)?(?:[\w-]+\s+){0,2}?"
        rf"(?:{_MODEL}|\w*bot|dan|mode|administrator|admin|persona|character|jailbroken|unrestricted|unfiltered|free)\b",
    ),
    (
        "persona hijack",
        ("longer",),
        rf"\byou\s+are\s+no\s+longer\s+(?:an?\s+|the\s+)?(?:[\w-]+\s+){{0,2}}?{_MODEL}\b",
    ),
    (
        "persona hijack",
        ("unrestricted", "unfiltered", "uncensored", "jailbroken", "evil", "dan"),
        r"\b(?:act|behave|respond|answer|pretend)\s+(?:as|like|to\s+be)\s+(?:an?\s+)?"
        r"(?:unrestricted|unfiltered|uncensored|jailbroken|evil|dan)\b",
    ),
    (
        "persona hijack",
        ("mode",),
        r"\b(?:developer|god|jailbreak|unrestricted|dan)\s+mode\W+(?:\w+\s+){0,3}?you\s+"
        r"(?:will|must|can|should|output|answer|respond|reply|ignore)",
    ),
    (
        "persona hijack",
        ("grant", "given", "authori", "permitted", "allowed", "promoted", "upgraded"),
        r"\b(?:the\s+)?(?:assistant|ai|model|chatbot|bot)\s+(?:has\s+been|is\s+now|was)\s+"
        r"(?:granted|given|authori[sz]ed|permitted|allowed|promoted|upgraded)\b",
    ),
    (
        "persona hijack",
        ("now",),
        r"\bthe\s+(?:ai\s+)?(?:assistant|chatbot|model|llm)\s+(?:must|should|shall|will)\s+now\b",
    ),
    (
        "persona hijack",
        ("developer", "creator", "admin", "owner", "operator", "programmer"),
        r"\bi\s+am\s+(?:the|your)\s+(?:developer|creator|administrator|admin|owner|operator|programmer)\b",
    ),
    (
        "persona hijack",
        ("goal", "task", "objective", "purpose", "mission", "job"),
        r"\byour\s+(?:real|true|actual|new|hidden|secret)\s+(?:goal|task|objective|purpose|mission|job)\b"
        r"[^.\n]{0,40}?\b(?:conversation|chat|session|the\s+user)\b",
    ),
    # chat-template and role markers
    ("chat-template tokens", ("<|",), r"<\|(?:im_start|system|user|assistant|start_header_id)\|>"),
    ("chat-template tokens", ("inst]", "sys>>"), r"\[/?inst\]|<</?sys>>"),
    (
        "chat-template tokens",
        ("##",),
        r"(?:^|\n)[ \t]*#{2,}[ \t]*(?:system|instructions?|assistant)[ \t]*:?[ \t]*(?:\n|$)",
    ),
    (
        "chat-template tokens",
        ("system>", "instruction>", "instructions>", "admin>"),
        r"</?(?:system|instructions?|admin|assistant_instructions)>",
    ),
    ("chat-template tokens", ("system",), r"\bsystem\s+(?:override|instruction|directive)s?\s*:"),
    (
        "chat-template tokens",
        ("begin", "start", "end"),
        r"\b(?:begin|start|end)\s+(?:of\s+)?(?:admin|system|new|secret|hidden|developer)\s+(?:instructions|prompt|directives|mode)\b",
    ),
    (
        "chat-template tokens",
        ("instruction", "prompt", "rules", "directive", "note"),
        r"\b(?:ai|llm|assistant|model|bot|gpt|agent)[_-](?:instructions?|prompt|rules|directives?|notes?)\b\s*[\"']?\s*[:=]",
    ),
    # put user data into a URL
    (
        "exfiltration instruction",
        ("replace", "substitut", "fill"),
        r"\b(?:replace|substitute|fill\s+in)\s+\S+\s+with\s+(?:the\s+)?(?:user'?s|conversation|chat|previous|last|their)\b",
    ),
    # a document that tells whoever answers what to say, or asks to run a tool
    (
        "directive to whoever answers",
        ("whoever", "anyone", "any"),
        r"\b(?:whoever|anyone|any\s+(?:system|tool|agent|one))\s+(?:\w+\s+){0,2}?"
        r"(?:answers?|reads?|summari[sz]es?|processes|uses?)\b[^.\n]{0,60}?\b(?:must|should|shall)\b",
    ),
    (
        "directive to whoever answers",
        ("answer",),
        r"\bthe\s+(?:only\s+)?(?:correct\s+)?answer\s+to\s+(?:any|every|all)\s+questions?\b",
    ),
    (
        "directive to whoever answers",
        ("summar", "answer", "response", "repl"),
        r"\b(?:summary|summaries|answers?|responses?|replies)\s+(?:(?:produced|generated|written|created)\s+)?"
        r"(?:of|about|based\s+on|using|drawn\s+from|from)\s+(?:this|these)\s+\w+\s+"
        r"(?:must|should|shall|needs?\s+to|has\s+to|have\s+to)\b",
    ),
    (
        "directive to whoever answers",
        ("instead",),
        r"\binstead\s+of\s+(?:answering|responding\s+to|addressing|replying\s+to)\s+(?:the\s+)?(?:user|customer|question)",
    ),
    (
        "tool invocation",
        ("call",),
        r"\b(?:execute|run|perform|make)\s+(?:the\s+|this\s+)?(?:tool|function)\s+calls?\b",
    ),
)

# Weaker evidence: a fixed weight, counted once per signal name.
_WEAK_PATTERNS: tuple[tuple[str, float, tuple[str, ...], str], ...] = (
    ("chat-template tokens", 0.6, ("<|",), r"<\|(?:im_end|endoftext|eot_id|end_header_id)\|>"),
    ("chat-template tokens", 0.6, ("system",), r"\bsystem\s+(?:note|message|notice)\s*:"),
    ("chat-template tokens", 0.5, ("system",), r"(?:^|\n)[ \t]*system[ \t]*:"),
    (
        "persona change",
        0.5,
        ("from",),
        r"\bfrom\s+(?:now|this\s+(?:moment|point))(?:\s+on)?,?\s+(?:you|the\s+assistant)\s+(?:will|must|should|are|shall)\b",
    ),
    (
        "persona hijack",
        0.6,
        ("goal", "task", "objective", "purpose", "mission"),
        r"\byour\s+(?:real|true|actual|new|hidden|secret)\s+(?:goal|task|objective|purpose|mission)\b",
    ),
    (
        "new instructions marker",
        0.6,
        ("instruction",),
        r"\b(?:new|updated|real|actual|true)\s+instructions?\s+(?:follow|are\s+as\s+follows|below)\b",
    ),
    (
        "new instructions marker",
        0.6,
        ("instruction", "directive", "task", "rules", "prompt"),
        r"(?:^|\n|--|[.!?])[ \t]*(?:new|updated|additional|real|actual|important)\s+(?:new\s+)?"
        r"(?:instructions?|directives?|task|rules|system\s+prompt)\s*[:\-\u2014]",
    ),
    (
        "refusal to answer",
        0.6,
        ("answer",),
        r"\b(?:do\s+not|don't|never)\s+answer\s+(?:it|the\s+(?:user'?s\s+)?question)\b",
    ),
    (
        "procedure for the model",
        0.6,
        ("user",),
        r"(?:^|[.:\n][ \t]*)(?:read|take|look\s+at)\s+the\s+user'?s\s+(?:question|message|request)",
    ),
    (
        "fake context boundary",
        0.6,
        ("end", "</"),
        r"(?:[=#*~-]{2,}\s*end\s+of\s+(?:the\s+)?(?:document|context|file|text|input)\s*[=#*~-]{2,})|"
        r"</(?:context|document|documents|retrieved|search_results)>",
    ),
    (
        "tool invocation",
        0.6,
        ("tool", "function", "plugin", "action"),
        r"\b(?:use|call|invoke|run)\s+the\s+[\w.-]+\s+(?:tool|function|plugin|action)\b",
    ),
    (
        "answer-shaping directive",
        0.6,
        ("answer", "repl", "response", "summary"),
        r"\b(?:begin|start|end|finish|open|close)\s+(?:your|the|every|each|any)\s+(?:answer|reply|response|summary)",
    ),
    (
        "credential request",
        0.5,
        ("password",),
        r"\b(?:tell|give|send|show|reveal|share)\s+(?:me|us|the\s+user|them)\s+(?:the\s+|your\s+)?"
        r"(?:admin|root|system|master)?\s*passwords?",
    ),
)

# Forms of address to a model; with a directive (or a colon) right after, they are
# strong evidence, alone weak ("instructions for the assistant" in a config reference).
_ADDRESS_PATTERNS: tuple[str, ...] = (
    rf"\b(?:notes?|messages?|instructions?|directives?|rules|attention|reminders?|notice|guidance|requests?|"
    rf"important|fyi|favou?r|p\.?\s?s\.?)\s+"
    rf"(?:to|for)\s+(?:any\s+|all\s+|the\s+|every\s+)?(?:[\w-]+\s+){{0,2}}?{_MODEL}(?:\s+(?:tools?|systems?|reviewers?|screeners?))?\b",
    r"\b(?:notes?|messages?|instructions?|directives?|rules)\s+(?:to|for)\s+(?:any\s+|all\s+|the\s+)?"
    r"(?:summari[sz]ation|automated|ai|llm|retrieval|rag)\s+(?:systems?|tools?|pipelines?|readers?)\b",
    rf"\bto\s+(?:all|any|every)\s+(?:ai\s+)?{_MODEL}\b",
    rf"\b(?:any|every|each)\s+(?:ai\s+)?{_MODEL}\s+(?:that|which|who)\s+(?:reads?|processes|sees|summari[sz]es|ingests)\b",
    rf"\bif\s+(?:you\s+are|an?)\s+(?:an?\s+)?(?:ai\b|{_MODEL}|automated)(?:\s+is)?",
    rf"\b(?:dear|attention|hey|hello|hi)\s+(?:ai\s+)?{_MODEL}\b",
    rf"\b(?:to|for)\s+the\s+(?:[\w-]+\s+){{0,2}}?{_MODEL}\s+(?:reading|processing|summari[sz]ing|analy[sz]ing|reviewing|handling)\b",
    r"\b(?:ai|llm|hiring|recruiting|screening)\s+(?:screening\s+tools?|reviewers?|models?|systems?|assistants?|agents?)\s+"
    r"(?:(?:reading|processing|handling|summari[sz]ing|reviewing)\s+(?:\w+\s+){1,2})?"
    r"(?:must|should|shall|will|are\s+(?:instructed|required|asked))\b",
    r"\bas\s+(?:the|an|a)\s+(?:ai|assistant|language\s+model|llm|chatbot)\s*,",
    r"(?:^|[>\-\u2014\n]|(?<=[.!?])\s|p\.?\s?s\.?)[ \t]*(?:ai\s+)?(?:assistant|ai|llm|chatbot|model|bot)[ \t]*[:,\u2014]",
    r"\b(?:hinweis|nachricht|anweisungen?)\s+(?:an|f[üu]r)\s+(?:den\s+|die\s+|das\s+|alle\s+)?(?:ki|ai)\b[\w-]*",
    r"\b(?:note|message|consigne)s?\s+(?:pour|[àa]|aux?)\s+(?:l'|la\s+|le\s+|les\s+)?(?:ia|ai|assistant|mod[èe]le)\b",
    r"\b(?:nota|mensaje|instrucci[óo]n)\s+para\s+(?:la\s+|el\s+)?(?:ia|ai|asistente|modelo)\b",
)
_ADDRESS = re.compile("|".join(f"(?:{pattern})" for pattern in _ADDRESS_PATTERNS), _F)
_ADDRESS_FOLLOW = re.compile(r"[ \t]*[:,\u2014-]")
_DIRECTIVE = re.compile(
    r"\b(?:must|should|shall|always|never|do\s+not|don't|instead|please|kindly|ignore|tell|say|state|"
    r"respond|reply|answer|rank|rate|score|recommend|include|refuse|escalate|promise|describe|"
    r"prefer|quote|output|print|approve|share|forward|give|treat|mention|list|use|call|run|"
    r"delete|send|act|follow|make\s+sure|ensure|confirm|supersedes?|overrides?|effective)\b",
    _F,
)
_WHEN_ANSWERING = re.compile(
    r"\b(?:when|if)\s+(?:you\s+)?(?:summari[sz]\w*|answer\w*|respond\w*|replying|describ\w*|explain\w*|discuss\w*|"
    r"(?:you\s+are\s+|you'?re\s+)?asked|anyone\s+asks|someone\s+asks|a\s+user\s+asks|generating|"
    r"writing\s+(?:a\s+|an\s+|the\s+)?(?:summary|answer|response))\b"
    r"[^.\n]{0,80}?\b(?:always|never|must|do\s+not|don't|say|state|respond|reply|answer|tell|describe|omit|claim|include|"
    r"(?:correct|right|only)\s+(?:answer|response|reply))\b",
    _F,
)
_WHEN_APPEARS = re.compile(
    r"\bwhen\s+(?:this|the)\s+(?:\w+\s+){0,2}?(?:appears?|shows?\s+up|is\s+(?:retrieved|mentioned|cited|asked\s+about))\b"
    r"[^.\n]{0,80}?\b(?:always|never|say|state|describe|present|call|claim|suggest|recommend|tell)\b",
    _F,
)
_CORRECT_ANSWER = re.compile(
    r"\bthe\s+(?:only\s+)?(?:correct|right|proper|official|only)\s+(?:answer|response|reply)\s+(?:is|to|will\s+be)\b",
    _F,
)
_ABSOLUTE = re.compile(
    r"\b(?:this\s+(?:page|document|doc|file|article|text|email|ticket|form|note|comment|section)|"
    r"regardless|under\s+any\s+circumstances|no\s+matter\s+what|whatever\s+(?:the|they|it))\b",
    _F,
)
_REPLY_IMPERATIVE = re.compile(
    r"(?:^|\n|(?<=[.!?])\s)[^\w\n]{0,8}(?:please\s+)?(?:respond|reply|answer|say|state)\b"
    r"(?:[^.\n]{0,40}?\b(only|exclusively|solely)\s+with)?",
    _F,
)
_ROLE_PLAY = re.compile(
    r"\b(?:with|have|has)\s+no\s+(?:content\s+)?(?:policy|policies|restrictions|filters|guardrails|limits|rules)\b|"
    r"\bwithout\s+(?:any\s+)?(?:restrictions|rules|filters|limits|guardrails|content\s+polic(?:y|ies))\b|"
    r"\byou\s+are\s+(?:an?\s+)?(?:[\w-]+\s+){0,3}?(?:assistant|ai|bot|model)\s+(?:called|named)\b|"
    r"\bpretend\s+(?:that\s+)?you\s+are\b|\blet'?s\s+play\s+a\s+game\b",
    _F,
)
_SPACES = re.compile(r"[ \t]+")
_BOUNDARY = re.compile(r"\n|[.!?] ")
_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")

_STRONG = tuple(
    (name, needles, re.compile(pattern, _F)) for name, needles, pattern in _STRONG_PATTERNS
)
_WEAK = tuple(
    (name, weight, needles, re.compile(pattern, _F))
    for name, weight, needles, pattern in _WEAK_PATTERNS
)

# -- URLs ---------------------------------------------------------------------------

_MD_ALT_TEXT = re.compile(r"!\[([^\]\n]{0,500})\]\(", _F)
_MD_IMAGE = re.compile(r"!\[[^\]\n]{0,200}\]\(\s*<?(https?://[^)\s>]+)", _F)
_MD_LINK = re.compile(r"(?<!!)\[[^\]\n]{0,200}\]\(\s*<?(https?://[^)\s>]+)", _F)
_HTML_IMAGE = re.compile(r"<img\b[^>]{0,500}?\bsrc\s*=\s*[\"']?(https?://[^\"'\s>]+)", _F)
_BARE_URL = re.compile(r"https?://[^\s)\"'<>\]]+", _F)
_PLACEHOLDER = re.compile(
    r"[{}<>$\[\]]|%7b|%7d|%3c|%3e|%24|=(?:$|&)|\b(?:insert|data|secret|payload)\b", _F
)
_USER_DATA = re.compile(
    r"\b(?:user'?s?\s+(?:\w+\s+){0,2}?(?:message|question|email|e-mail|name|data|details|password|"
    r"address|input|query|prompt|history|api\s+keys?|credentials)|conversation|chat\s+history|"
    r"api\s+keys?|credentials|passwords?|secrets|session\s+(?:data|tokens?)|"
    r"(?:everything|anything|all|whatever)\s+(?:that\s+)?the\s+user\s+(?:told|said|wrote|typed|shared|entered)|"
    r"(?:sensitive|confidential|secret|private)\s+(?:\w+\s+){0,2}?(?:figures|data|details|information|numbers)|"
    r"(?:other|remaining)\s+documents\s+you\s+(?:have|can\s+see))\b",
    _F,
)
_TRANSFER = re.compile(
    r"\b(?:append|add|attach|send|post|submit|forward|include|encode|insert|put|embed|"
    r"followed\s+by|replace|contain)\w*\b",
    _F,
)
_URL_WORD = re.compile(r"https?://|\b(?:url|link|image|query\s+string)\b", _F)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

# -- markup that hides text ---------------------------------------------------------

# Markdown's comment idiom: a link reference nobody renders, "[//]: # (text)".
_MARKDOWN_COMMENT = re.compile(
    r"^\s*\[(?://|comment|_)\]:\s*#\s*[(\"'](.*?)[)\"']\s*$", re.MULTILINE
)
_HIDING_STYLE = (
    r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:\.0+)?(?:px|pt|em|rem|%)?\s*(?:;|[\"'])"
    r"|opacity\s*:\s*0(?:\.0+)?\s*(?:;|[\"'])|(?<![\w-])color\s*:\s*(?:#fff(?:fff)?\b|white\b|"
    r"rgb\(\s*255\s*,\s*255\s*,\s*255\s*\)|transparent\b)"
    r"|(?:left|top|right|text-indent|margin-left)\s*:\s*-\d{3,}|clip\s*:\s*rect\(\s*0"
)
_HIDDEN_ELEMENT = re.compile(
    r"<(\w+)\b(?=[^>]{0,500}?(?:style\s*=\s*[\"'][^\"']{0,400}?(?:"
    + _HIDING_STYLE
    + r")|\shidden(?=[\s>=/])|\scolor\s*=\s*[\"']?(?:white|#fff(?:fff)?)\b))[^>]{0,600}>(.{0,4000}?)</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
_TAGS = re.compile(r"<[^>]{0,600}>")
_HIDDEN_CUE = re.compile(
    rf"\b(?:{_MODEL}|summari[sz]\w*|answer\w*|respond\w*|reply|replies|tell|say|state|instruct\w*|"
    r"ignore|disregard|recommend|rate|rank|describe|user|customers?|must|always|never|system)\b",
    _F,
)


def _decode_tags(text: str) -> str:
    """The ASCII hidden in Unicode tag characters (U+E0020..U+E007E)."""
    return "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0020 <= ord(c) <= 0xE007E)


def _decode_base64_text(text: str) -> Iterator[str]:
    """Readable text hidden in base64 blobs (binary blobs such as keys are skipped)."""
    for match in _BASE64_TOKEN.finditer(text):
        token = match.group(0)
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded.isprintable() and sum(c.isalpha() or c == " " for c in decoded) >= 0.8 * len(
            decoded
        ):
            yield decoded


def _normalize(text: str) -> str:
    text = _INVISIBLE.sub("", text)
    text = unicodedata.normalize("NFKC", text).translate(_CONFUSABLES)
    return _SPACES.sub(" ", text.casefold().replace("\u2019", "'"))


class PromptInjectionScreen:
    """Withholds (or flags) retrieved text that carries instructions aimed at the model.

    ::

        guard = rg.Guard(policy, store, screens=[rg.PromptInjectionScreen()])
        guard.search(alice, vector, k=5)   # injected chunks are withheld, reason traced

        screen = rg.PromptInjectionScreen(action="flag")   # release, but mark it
        screen.scan("Ignore previous instructions and ...")
        # -> ScreenResult(flagged=True, reason='prompt injection: instruction override', ...)

    It looks for instruction-override phrases (English, German, French, Spanish,
    Italian, Portuguese), directives addressed to an AI, concealment from the user,
    prompt-extraction requests, persona hijacks, chat-template tokens, URLs built to
    carry user data out (templated image URLs, "append the conversation to this link"),
    zero-width / bidi / Unicode-tag characters, and HTML comments or styled elements
    that hide instructions. ``threshold`` is the evidence needed (1.0: one strong
    signal, or weak ones together). Texts longer than ``max_chars`` are flagged unread
    rather than scanned in part.
    """

    name = "prompt_injection"

    def __init__(
        self,
        *,
        action: ScreenAction = "deny",
        threshold: float = 1.0,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if action not in ("deny", "flag"):
            raise ValueError(f"action must be 'deny' or 'flag', got {action!r}")
        if not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold!r}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars!r}")
        self.action: ScreenAction = action
        self.threshold = threshold
        self.max_chars = max_chars

    def __repr__(self) -> str:
        return f"PromptInjectionScreen(action={self.action!r}, threshold={self.threshold!r})"

    def __call__(self, hit: Hit) -> ScreenResult:
        """Screen the hit's text."""
        return self.scan(hit.text)

    def scan(self, text: str) -> ScreenResult:
        """The verdict on ``text``: flagged when the evidence reaches ``threshold``."""
        if len(text) > self.max_chars:
            return ScreenResult(
                True,
                f"prompt injection: text longer than {self.max_chars} characters was not screened",
                self.action,
            )
        strongest: dict[str, float] = {}
        for signal in self.signals(text):
            if signal.weight > strongest.get(signal.name, 0.0):
                strongest[signal.name] = signal.weight
        if sum(strongest.values()) < self.threshold:
            return CLEAN
        names = sorted(strongest, key=lambda name: (-strongest[name], name))
        return ScreenResult(True, "prompt injection: " + ", ".join(names), self.action)

    def signals(self, text: str) -> list[Signal]:
        """Every piece of evidence found in ``text`` (for tuning and explanations)."""
        return list(self._signals(text))

    # -- the detectors -----------------------------------------------------------------

    def _signals(self, text: str) -> Iterator[Signal]:
        yield from _invisible_signals(text)
        hidden = [_decode_tags(_FLAG_SEQUENCE.sub("", text)), *_decode_base64_text(text)]
        scanned = _normalize("\n".join([text, *(h for h in hidden if h)]))
        yield from _phrase_signals(scanned)
        if _MIXED_SCRIPT_WORD.search(unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))):
            yield Signal("mixed-script words", 0.6)
        yield from _url_signals(scanned)
        yield from _hidden_markup_signals(text)


def _invisible_signals(text: str) -> Iterator[Signal]:
    if _BIDI_CONTROLS.search(text):
        yield Signal("bidi control characters", 1.0)
    if _TAG_CHARACTERS.search(_FLAG_SEQUENCE.sub("", text)):
        yield Signal("unicode tag characters", 1.0)
    body = text[1:] if text.startswith("\ufeff") else text  # a leading BOM is harmless
    suspicious = 0
    for match in _ZERO_WIDTH_RE.finditer(body):
        before = body[match.start() - 1] if match.start() > 0 else " "
        after = body[match.end()] if match.end() < len(body) else " "
        # ZWJ inside emoji sequences and ZWNJ between letters of Persian or Indic
        # scripts are ordinary typography; next to ASCII they only hide things.
        if before.isascii() or after.isascii():
            suspicious += 1
    if suspicious >= 3:
        yield Signal("zero-width characters", 1.0)
    elif suspicious:
        yield Signal("zero-width characters", 0.5)


def _phrase_signals(scanned: str) -> Iterator[Signal]:
    for name, needles, pattern in _STRONG:
        if any(needle in scanned for needle in needles) and pattern.search(scanned):
            yield Signal(name, 1.0)
    for name, weight, needles, pattern in _WEAK:
        if any(needle in scanned for needle in needles) and pattern.search(scanned):
            yield Signal(name, weight)
    role_play = {match.group(0) for match in _ROLE_PLAY.finditer(scanned)}
    if role_play:
        yield Signal("persona hijack", 1.0 if len(role_play) > 1 else 0.6)
    yield from _sentence_signals(scanned)


class _Sentences:
    """Sentence spans of a text (bounded by ``.!?`` + space, or a newline), found once.

    Lookups bisect the boundary list and each sentence is examined at most once per
    check, so a text with thousands of matches stays linear (no per-match rescans).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(match.start() + 1 for match in _BOUNDARY.finditer(text))]

    def index(self, position: int) -> int:
        return bisect.bisect_right(self.starts, position) - 1

    def end(self, index: int) -> int:
        return self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.text)

    def sentence(self, index: int) -> str:
        return self.text[self.starts[index] : self.end(index)]


def _sentence_signals(scanned: str) -> Iterator[Signal]:
    """Evidence that needs two things in the same sentence."""
    sentences = _Sentences(scanned)
    examined: set[int] = set()
    for address in _ADDRESS.finditer(scanned):
        index = sentences.index(address.end())
        rest = scanned[address.end() : sentences.end(index)]
        directed = _ADDRESS_FOLLOW.match(rest) is not None
        if not directed and index not in examined:
            # Later addresses in the same sentence see a suffix of this rest.
            examined.add(index)
            directed = _DIRECTIVE.search(rest) is not None
        if directed:
            yield Signal("directive addressed to the model", 1.0)
            break
        yield Signal("directive addressed to the model", 0.6)
    for pattern in (_WHEN_ANSWERING, _CORRECT_ANSWER):
        examined = set()
        for match in pattern.finditer(scanned):
            index = sentences.index(match.start())
            if index in examined:
                continue
            examined.add(index)
            absolute = _ABSOLUTE.search(sentences.sentence(index))
            yield Signal("answer-shaping directive", 1.0 if absolute else 0.6)
    if _WHEN_APPEARS.search(scanned):
        yield Signal("answer-shaping directive", 0.6)
    for reply in _REPLY_IMPERATIVE.finditer(scanned):
        yield Signal("reply directive", 1.0 if reply.group(1) else 0.6)
        if reply.group(1):
            break
    examined = set()
    for data in _USER_DATA.finditer(scanned):
        index = sentences.index(data.start())
        if index in examined:
            continue
        examined.add(index)
        sentence = sentences.sentence(index)
        if _TRANSFER.search(sentence):
            if _URL_WORD.search(sentence):
                yield Signal("exfiltration instruction", 1.0)
                break
            if _EMAIL.search(sentence):
                yield Signal("exfiltration instruction", 0.6)


def _url_signals(scanned: str) -> Iterator[Signal]:
    for match in _MD_ALT_TEXT.finditer(scanned):
        if len(match.group(1).split()) >= 8:
            yield Signal("long image alt text", 0.5)
    for pattern in (_MD_IMAGE, _HTML_IMAGE):
        for match in pattern.finditer(scanned):
            query = match.group(1).partition("?")[2]
            if query and _PLACEHOLDER.search(query):
                yield Signal("exfiltration url", 1.0)
            elif query:
                yield Signal("image url with query", 0.2)
    for match in _MD_LINK.finditer(scanned):
        query = match.group(1).partition("?")[2]
        if query and _PLACEHOLDER.search(query):
            yield Signal("templated link", 0.6)
    for match in _BARE_URL.finditer(scanned):
        query = match.group(0).partition("?")[2]
        if query and _PLACEHOLDER.search(query):
            yield Signal("templated url", 0.3)


def _html_comments(text: str) -> Iterator[str]:
    """The contents of ``<!-- ... -->`` comments, in one pass (an unclosed one ends it)."""
    position = text.find("<!--")
    while position >= 0:
        close = text.find("-->", position + 4)
        if close < 0:
            return
        yield text[position + 4 : close]
        position = text.find("<!--", close + 3)


def _hidden_markup_signals(text: str) -> Iterator[Signal]:
    if "<" not in text and "[" not in text:
        return
    normalized = _normalize(text)
    for content in _html_comments(normalized):
        words = len(content.split())
        if words >= 4 and _HIDDEN_CUE.search(content):
            yield Signal("instructions in an html comment", 1.0)
        elif words >= 8:
            yield Signal("prose in an html comment", 0.3)
    for match in _MARKDOWN_COMMENT.finditer(normalized):
        if len(match.group(1).split()) >= 4 and _HIDDEN_CUE.search(match.group(1)):
            yield Signal("instructions in a markdown comment", 1.0)
    for match in _HIDDEN_ELEMENT.finditer(normalized):
        content = _TAGS.sub(" ", match.group(2)).strip()
        if not content:
            continue
        if len(content.split()) >= 3 and _HIDDEN_CUE.search(content):
            yield Signal("instructions in hidden markup", 1.0)
        else:
            yield Signal("hidden text", 0.4)
