"""What kind of answer a question asks for, and which kinds a sentence offers, in any script.

A question asks for a slot: a person or organisation ("who"), a time ("when", "in what year"), a
quantity ("how many", "how much", "how long"), a place ("where"), a reason ("why") or a manner
("how"); other questions ask for a thing. A sentence offers slots that can be seen without a parser:
numbers in any script, years, month names, currencies, names (capitalised words in Latin text, Latin
or transliterated names inside Arabic, Chinese or Cyrillic text), and causal connectives. The answerer
prefers sentences that offer the slot asked for, and a sentence that cannot offer it is weak evidence:
"How much does a subscription cost?" is not answered by a sentence without a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SLOTS = ("person", "time", "quantity", "place", "reason", "manner", "thing")

# Question cues per slot, most specific first; matched on the lower-cased question. Latin-script cues
# are whole words; Arabic and Chinese cues are substrings (no spaces in Chinese, clitics in Arabic).
_CUES: list[tuple[str, str]] = [
    # time
    ("time", r"\b(when|what year|which year|what date|which date|what day|what time|what century|in what decade"
             r"|quand|en quelle année|à quelle date|quel jour|en quel siècle|cuándo|en qué año|qué día|wann"
             r"|in welchem jahr|an welchem tag|когда|в каком году|какого числа)\b"),
    ("time", r"(متى|في أي عام|في أي سنة|في أي تاريخ|ما تاريخ|في أي يوم|في أي قرن|什么时候|何时|哪一年|哪年|几月|哪天|哪一天"
             r"|什么时间|何年|哪个世纪|日期是)"),
    # quantity
    ("quantity", r"\b(how many|how much|how long|how old|how far|how big|how large|how tall|how often|what percentage"
                 r"|what proportion|what number|what amount|what is the price|combien|quel âge|quelle durée"
                 r"|quel pourcentage|quelle taille|cuántos|cuántas|cuánto|cuánta|qué porcentaje|wie viele|wie viel"
                 r"|wie lange|wie alt|wie groß|wie hoch|сколько|какой процент)\b"),
    ("quantity", r"(كم |كم$|^كم|ما عدد|ما نسبة|ما مقدار|ما هي نسبة|ما هو عدد|ما هو سعر|ما سعر|ما هي مدة|多少|几个|几位|几次|几年|多长"
                 r"|多久|多大|多高|多远|百分之几|价格是)"),
    # person
    ("person", r"\b(who|whom|whose|which person|which company|which organization|which group|qui|quelle personne"
               r"|quelle entreprise|quelle société|quel groupe|quién|quiénes|qué empresa|wer|wem|wen|wessen"
               r"|welche firma|кто|кого|кому|чей|какая компания)\b"),
    # "Which Hollywood actor", "quel réalisateur": which/what + a noun for a person or an organisation.
    ("person", r"\b(which|what|quel|quelle|quels|quelles|qué|cuál|welcher|welche|welches)( [\w-]+)? (actors?|actress(es)?"
               r"|directors?|filmmakers?|artists?|persons?|people|compan(y|ies)|firms?|studios?|start-?ups?|groups?"
               r"|organi[sz]ations?|teams?|agenc(y|ies)|newspapers?|magazines?|ceo|executives?|founders?|researchers?"
               r"|scientists?|presidents?|leaders?|kings?|queens?|emperors?|players?|bands?|singers?|writers?"
               r"|authors?|poets?|composers?|architects?|engineers?|generals?|acteurs?|actrices?|réalisat(eur|rice)s?"
               r"|artistes?|personnes?|entreprises?|sociétés?|groupes?|organisations?|équipes?|agences?|journal"
               r"|journaux|dirigeants?|fondat(eur|rice)s?|chercheu(r|se)s?|scientifiques?|présidents?|rois?|reines?"
               r"|écrivains?|auteurs?|actor|actriz|director|empresa|compañía|grupo|persona|schauspieler(in)?"
               r"|regisseur(in)?|firma|unternehmen|gruppe|person)\b"),
    ("person", r"(أي ممثل|أي مخرج|أي فنان|أي صحيفة|哪个演员|哪位演员|哪个导演|哪个团队|哪个组织|哪个集团"
               r"|哪家媒体|哪个人)"),
    ("person", r"(^من |^من$| من هو| من هي| من هم|^من الذي|أي شركة|ما اسم|ما هي الشركة|ما الشركة|谁|哪位|哪家|哪个公司|哪个组织"
               r"|哪一位|什么人)"),
    # place
    ("place", r"\b(where|what country|which country|what city|which city|what place|où|dans quel pays"
              r"|dans quelle ville|quel pays|dónde|qué país|qué ciudad|wo|wohin|woher|in welchem land|где|куда|откуда"
              r"|в какой стране)\b"),
    ("place", r"(أين|في أي بلد|في أي مدينة|ما البلد|哪里|在哪|哪儿|哪个国家|哪个城市|何处|何地)"),
    # reason
    ("reason", r"\b(why|for what reason|what caused|pourquoi|pour quelle raison|por qué|warum|weshalb|wieso|почему|зачем)\b"),
    ("reason", r"(لماذا|لم |ما سبب|ما هو سبب|ما الذي دفع|为什么|为何|什么原因|原因是)"),
    # manner
    ("manner", r"\b(how|comment|cómo|wie|как)\b"),
    ("manner", r"(كيف|怎么|如何|怎样)"),
]
_CUE_RES = [(slot, re.compile(pattern, re.IGNORECASE)) for slot, pattern in _CUES]

_DIGIT = re.compile(r"\d")
_CJK_NUMERAL = re.compile(r"[一二两三四五六七八九十百千万亿]+(?:[年月日个位名次岁倍%％]|分之)")
_NUMBER_WORD = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|hundred|thousand|million|billion"
    r"|dozen|half|un|une|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|vingt|cent|mille|million|milliard|dos|tres"
    r"|cuatro|cinco|seis|siete|ocho|nueve|diez|veinte|cien|mil|millón|zwei|drei|vier|fünf|sechs|sieben|acht|neun"
    r"|zehn|hundert|tausend|миллион|тысяч|сто|два|три|пять|десять)\b", re.IGNORECASE)
_ARABIC_NUMBER_WORD = re.compile(r"(واحد|اثنان|اثنين|ثلاث|أربع|خمس|ست|سبع|ثمان|تسع|عشر|مئة|مائة|ألف|مليون|مليار|دقيقة واحدة)")
_YEAR = re.compile(r"(?<!\d)(1[0-9]{3}|20[0-9]{2})(?!\d)")
_MONTH = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november|december|janvier|février"
    r"|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre|enero|febrero|marzo|abril|mayo|junio"
    r"|julio|agosto|septiembre|octubre|noviembre|diciembre|januar|februar|märz|juni|juli|oktober|dezember"
    r"|январ|феврал|март|апрел|мая|июн|июл|август|сентябр|октябр|ноябр|декабр|century|siècle|siglo|jahrhundert"
    r"|век)\w*", re.IGNORECASE)
_ARABIC_TIME = re.compile(r"(يناير|فبراير|مارس|أبريل|مايو|يونيو|يوليو|أغسطس|سبتمبر|أكتوبر|نوفمبر|ديسمبر|كانون|شباط|آذار|نيسان"
                          r"|أيار|حزيران|تموز|آب|أيلول|تشرين|القرن|عام \d|سنة \d)")
_CJK_TIME = re.compile(r"(\d+|[一二三四五六七八九十]+)\s*[年月日]|世纪|年代")
_MONEY = re.compile(r"([$€£¥]|\b(dollars?|euros?|pounds?|yuan|dollar|dólares|rubles?)\b|دولار|يورو|美元|欧元|元|рубл)",
                    re.IGNORECASE)
_CAUSE = re.compile(
    r"\b(because|since|due to|owing to|as a result|in order to|so that|therefore|car|parce que|puisque|en raison"
    r"|à cause|afin de|pour que|donc|porque|debido a|para que|por lo tanto|weil|da|wegen|damit|deshalb"
    r"|потому что|из-за|поэтому|чтобы|так как)\b", re.IGNORECASE)
_ARABIC_CAUSE = re.compile(r"(لأن|بسبب|نظرا ل|نتيجة ل|من أجل|لكي|لذلك)")
_CJK_CAUSE = re.compile(r"(因为|由于|所以|因此|为了|以便|导致|原因)")
_LATIN_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][\w'’-]*")
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-ZÀ-ÖØ-Þ][\w'’-]+")
_NON_LATIN = re.compile(r"[\u0600-\u06ff\u0400-\u04ff\u4e00-\u9fff]")
_CJK_NAME = re.compile(r"[\u4e00-\u9fff]{1,4}[·•][\u4e00-\u9fff]{1,6}|[\u4e00-\u9fff]{2,4}(?:先生|女士|总统|总裁|首席|教授)")
_QUOTED = re.compile(r"[«“\"「『][^»”\"」』]{2,60}[»”\"」』]")


# "What is Sora?", "Qui est Mira Murati ?", "ما هو سورا؟", "Sora是什么？": a question that only names something.
# Its answer is how the articles introduce it, and news text introduces a name at its first mention ("OpenAI's
# video model Sora"), whatever the question's words match best later on. "What is the price?" names nothing
# (an article or determiner first), and a long tail is a question of its own ("What is Sora able to do?").
_DEFINITION_RES = [re.compile(p, re.IGNORECASE) for p in (
    r"^(?:what|who)(?: is|'s| are| was| were) (?!(?:the|a|an|this|that|these|those|it|its|their|his|her)\b)"
    r"([\w][\w.'’-]*(?: [\w][\w.'’-]*){0,2})\s*\??$",
    r"^(?:qu'est-ce que|qu’est-ce que|qu'est-ce qu'|qu’est-ce qu’|c'est quoi|c’est quoi|qui est|qui sont|que es|qué es"
    r"|quién es|was ist|wer ist|was sind|wer sind)\s*(?!(?:le|la|les|l'|l’|un|une|des|el|los|las|der|die|das|ein|eine)\b)"
    r"([\w][\w.'’-]*(?: [\w][\w.'’-]*){0,2})\s*[?？]?$",
    r"^(?:ما هو|ما هي|من هو|من هي|ما هم|من هم)\s+([^\s؟?]+(?: [^\s؟?]+){0,2})\s*[؟?]?$",
    r"^(?:什么是|谁是)\s*([^？?\s的，,]{1,8})\s*[？?]?$",  # "的" makes it an attribute: "X的领导人是谁"
    r"^([^？?\s的，,]{1,8}?)\s*(?:是什么|是谁|是什麼|是誰)(?:[呢啊]?)\s*[？?]?$",
)]


def defined_term(question: str) -> str:
    """What a question asks to be introduced ("Sora" for "What is Sora?"), or "" when it asks for more."""
    text = " ".join(question.strip().split())
    for pattern in _DEFINITION_RES:
        m = pattern.match(text)
        if m:
            return m.group(1).strip(" .'’")
    return ""


def question_slot(question: str) -> str:
    """The slot a question asks for (one of SLOTS); 'thing' when no cue matches."""
    text = " ".join(question.lower().split())
    for slot, pattern in _CUE_RES:
        if pattern.search(text):
            return slot
    return "thing"


@dataclass(frozen=True)
class Offer:
    """The slots a sentence can fill."""

    number: bool
    time: bool
    money: bool
    name: bool | None  # None: the script has no capitals to tell (Arabic, Chinese) and no Latin name is there
    cause: bool

    def fills(self, slot: str) -> bool | None:
        match slot:
            case "person" | "place":
                return self.name
            case "time":
                return self.time
            case "quantity":
                return self.number or self.money
            case "reason":
                return self.cause
            case _:
                return True


def offers(sentence: str) -> Offer:
    number = bool(_DIGIT.search(sentence) or _CJK_NUMERAL.search(sentence) or _NUMBER_WORD.search(sentence)
                  or _ARABIC_NUMBER_WORD.search(sentence))
    time = bool(_YEAR.search(sentence) or _MONTH.search(sentence) or _ARABIC_TIME.search(sentence)
                or _CJK_TIME.search(sentence))
    money = bool(_MONEY.search(sentence))
    if _NON_LATIN.search(sentence):
        # In Arabic, Chinese or Cyrillic text a Latin word is a name or a brand ("OpenAI", "Hugging Face").
        name = bool(_LATIN_WORD.search(sentence) or _CJK_NAME.search(sentence) or _QUOTED.search(sentence)) or None
        if name is None and re.search("[\u0400-\u04ff]", sentence):
            name = bool(_CAPITALISED.search(sentence))  # Cyrillic has capitals
    else:
        name = bool(_CAPITALISED.search(sentence) or _QUOTED.search(sentence))
    cause = bool(_CAUSE.search(sentence) or _ARABIC_CAUSE.search(sentence) or _CJK_CAUSE.search(sentence))
    return Offer(number, time, money, name, cause)
