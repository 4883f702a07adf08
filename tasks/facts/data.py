"""Fact lists for measuring what the untaught model already knows (issue 47, item 5).

Short factual tables written for this project (no external prose): each kind is a list of
``Fact(subject, answers)`` where ``answers[0]`` is the canonical answer and the rest are accepted
spellings. Items whose answer would be scored correct by echoing the question (an accepted answer
inside the subject: Luxembourg, Djibouti, Guinea-Bissau; verbs whose past tense is the base form) are
left out, as are answers that are disputed or changed recently (Bolivia, South Africa, Côte d'Ivoire,
Tanzania, Burundi, Israel) and transcontinental countries in the continent kind.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fact:
    subject: str
    answers: tuple[str, ...]  # canonical first, then accepted variants

    @property
    def answer(self) -> str:
        return self.answers[0]


# country, capital (accepted spellings separated by "|"; "" = not used for capitals), continent ("" = not used)
_COUNTRIES = """
Algeria;Algiers;Africa
Angola;Luanda;Africa
Benin;;Africa
Botswana;Gaborone;Africa
Burkina Faso;Ouagadougou;Africa
Burundi;;Africa
Cameroon;Yaoundé;Africa
Cape Verde;Praia;Africa
Central African Republic;Bangui;Africa
Chad;N'Djamena|Ndjamena;Africa
Comoros;Moroni;Africa
Democratic Republic of the Congo;Kinshasa;Africa
Republic of the Congo;Brazzaville;Africa
Djibouti;;Africa
Egypt;Cairo;Africa
Equatorial Guinea;Malabo;Africa
Eritrea;Asmara;Africa
Ethiopia;Addis Ababa;Africa
Gabon;Libreville;Africa
The Gambia;Banjul;Africa
Ghana;Accra;Africa
Guinea;Conakry;Africa
Kenya;Nairobi;Africa
Lesotho;Maseru;Africa
Liberia;Monrovia;Africa
Libya;Tripoli;Africa
Madagascar;Antananarivo;Africa
Malawi;Lilongwe;Africa
Mali;Bamako;Africa
Mauritania;Nouakchott;Africa
Mauritius;Port Louis;Africa
Morocco;Rabat;Africa
Mozambique;Maputo;Africa
Namibia;Windhoek;Africa
Niger;Niamey;Africa
Nigeria;Abuja;Africa
Rwanda;Kigali;Africa
Senegal;Dakar;Africa
Seychelles;Victoria;Africa
Sierra Leone;Freetown;Africa
Somalia;Mogadishu;Africa
South Sudan;Juba;Africa
Sudan;Khartoum;Africa
Togo;Lomé;Africa
Tunisia;Tunis;Africa
Uganda;Kampala;Africa
Zambia;Lusaka;Africa
Zimbabwe;Harare;Africa
Afghanistan;Kabul;Asia
Bahrain;Manama;Asia
Bangladesh;Dhaka;Asia
Bhutan;Thimphu;Asia
Brunei;Bandar Seri Begawan;Asia
Cambodia;Phnom Penh;Asia
China;Beijing;Asia
India;New Delhi|Delhi;Asia
Indonesia;Jakarta;Asia
Iran;Tehran;Asia
Iraq;Baghdad;Asia
Japan;Tokyo;Asia
Jordan;Amman;Asia
Kyrgyzstan;Bishkek;Asia
Laos;Vientiane;Asia
Lebanon;Beirut;Asia
Malaysia;Kuala Lumpur;Asia
Maldives;Malé;Asia
Mongolia;Ulaanbaatar|Ulan Bator;Asia
Myanmar;Naypyidaw|Naypyitaw|Nay Pyi Taw;Asia
Nepal;Kathmandu;Asia
North Korea;Pyongyang;Asia
Oman;Muscat;Asia
Pakistan;Islamabad;Asia
Philippines;Manila;Asia
Qatar;Doha;Asia
Saudi Arabia;Riyadh;Asia
South Korea;Seoul;Asia
Syria;Damascus;Asia
Tajikistan;Dushanbe;Asia
Thailand;Bangkok;Asia
East Timor;Dili;Asia
Turkmenistan;Ashgabat;Asia
United Arab Emirates;Abu Dhabi;Asia
Uzbekistan;Tashkent;Asia
Vietnam;Hanoi;Asia
Yemen;Sanaa|Sana'a;Asia
Kazakhstan;Astana|Nur-Sultan;
Georgia;Tbilisi;
Armenia;Yerevan;
Azerbaijan;Baku;
Turkey;Ankara;
Russia;Moscow;
Cyprus;Nicosia;
Albania;Tirana;Europe
Andorra;Andorra la Vella;Europe
Austria;Vienna;Europe
Belarus;Minsk;Europe
Belgium;Brussels;Europe
Bosnia and Herzegovina;Sarajevo;Europe
Bulgaria;Sofia;Europe
Croatia;Zagreb;Europe
Czech Republic;Prague;Europe
Denmark;Copenhagen;Europe
Estonia;Tallinn;Europe
Finland;Helsinki;Europe
France;Paris;Europe
Germany;Berlin;Europe
Greece;Athens;Europe
Hungary;Budapest;Europe
Iceland;Reykjavik;Europe
Ireland;Dublin;Europe
Italy;Rome;Europe
Latvia;Riga;Europe
Liechtenstein;Vaduz;Europe
Lithuania;Vilnius;Europe
Malta;Valletta;Europe
Moldova;Chisinau;Europe
Montenegro;Podgorica;Europe
Netherlands;Amsterdam;Europe
North Macedonia;Skopje;Europe
Norway;Oslo;Europe
Poland;Warsaw;Europe
Portugal;Lisbon;Europe
Romania;Bucharest;Europe
Serbia;Belgrade;Europe
Slovakia;Bratislava;Europe
Slovenia;Ljubljana;Europe
Spain;Madrid;Europe
Sweden;Stockholm;Europe
Switzerland;Bern|Berne;Europe
Ukraine;Kyiv|Kiev;Europe
United Kingdom;London;Europe
Canada;Ottawa;North America
United States;Washington;North America
Mexico;Mexico City;North America
Guatemala;Guatemala City;North America
Belize;Belmopan;North America
Honduras;Tegucigalpa;North America
El Salvador;San Salvador;North America
Nicaragua;Managua;North America
Costa Rica;San José;North America
Panama;Panama City;North America
Cuba;Havana;North America
Jamaica;Kingston;North America
Haiti;Port-au-Prince;North America
Dominican Republic;Santo Domingo;North America
Bahamas;Nassau;North America
Barbados;Bridgetown;North America
Trinidad and Tobago;Port of Spain;North America
Grenada;St. George's;North America
Saint Lucia;Castries;North America
Dominica;Roseau;North America
Antigua and Barbuda;St. John's;North America
Saint Vincent and the Grenadines;Kingstown;North America
Saint Kitts and Nevis;Basseterre;North America
Argentina;Buenos Aires;South America
Brazil;Brasília;South America
Chile;Santiago;South America
Colombia;Bogotá;South America
Ecuador;Quito;South America
Guyana;Georgetown;South America
Paraguay;Asunción;South America
Peru;Lima;South America
Suriname;Paramaribo;South America
Uruguay;Montevideo;South America
Venezuela;Caracas;South America
Bolivia;;South America
New Zealand;Wellington;Oceania
Fiji;Suva;Oceania
Papua New Guinea;Port Moresby;Oceania
Samoa;Apia;Oceania
Tonga;Nuku'alofa;Oceania
Vanuatu;Port Vila;Oceania
Solomon Islands;Honiara;Oceania
Kiribati;Tarawa|South Tarawa;Oceania
Micronesia;Palikir;Oceania
Marshall Islands;Majuro;Oceania
Palau;Ngerulmud;Oceania
Tuvalu;Funafuti;Oceania
Nauru;;Oceania
"""

CONTINENT_ALIASES = {"Oceania": ("Oceania", "Australia and Oceania", "Australasia")}

_ELEMENTS = """
H Hydrogen;He Helium;Li Lithium;Be Beryllium;B Boron;C Carbon;N Nitrogen;O Oxygen;F Fluorine;Ne Neon;
Na Sodium;Mg Magnesium;Al Aluminium|Aluminum;Si Silicon;P Phosphorus;S Sulfur|Sulphur;Cl Chlorine;Ar Argon;
K Potassium;Ca Calcium;Sc Scandium;Ti Titanium;V Vanadium;Cr Chromium;Mn Manganese;Fe Iron;Co Cobalt;
Ni Nickel;Cu Copper;Zn Zinc;Ga Gallium;Ge Germanium;As Arsenic;Se Selenium;Br Bromine;Kr Krypton;
Rb Rubidium;Sr Strontium;Y Yttrium;Zr Zirconium;Nb Niobium;Mo Molybdenum;Tc Technetium;Ru Ruthenium;
Rh Rhodium;Pd Palladium;Ag Silver;Cd Cadmium;In Indium;Sn Tin;Sb Antimony;Te Tellurium;I Iodine;Xe Xenon;
Cs Caesium|Cesium;Ba Barium;La Lanthanum;Ce Cerium;Pr Praseodymium;Nd Neodymium;Pm Promethium;Sm Samarium;
Eu Europium;Gd Gadolinium;Tb Terbium;Dy Dysprosium;Ho Holmium;Er Erbium;Tm Thulium;Yb Ytterbium;
Lu Lutetium;Hf Hafnium;Ta Tantalum;W Tungsten;Re Rhenium;Os Osmium;Ir Iridium;Pt Platinum;Au Gold;
Hg Mercury;Tl Thallium;Pb Lead;Bi Bismuth;Po Polonium;At Astatine;Rn Radon;Fr Francium;Ra Radium;
Ac Actinium;Th Thorium;Pa Protactinium;U Uranium;Np Neptunium;Pu Plutonium;Am Americium;Cm Curium;
Bk Berkelium;Cf Californium;Es Einsteinium;Fm Fermium;Md Mendelevium;No Nobelium;Lr Lawrencium;
Rf Rutherfordium;Db Dubnium;Sg Seaborgium;Bh Bohrium;Hs Hassium;Mt Meitnerium;Ds Darmstadtium;
Rg Roentgenium;Cn Copernicium;Nh Nihonium;Fl Flerovium;Mc Moscovium;Lv Livermorium;Ts Tennessine;
Og Oganesson
"""

# base form, simple past; verbs whose past equals the base form (put, cut, read, ...) or that have two
# common pasts (dream, learn, lie) are left out
_VERBS = """
arise arose;awake awoke;bear bore;become became;begin began;bend bent;bind bound;bite bit;bleed bled;
blow blew;break broke;breed bred;bring brought;build built;buy bought;catch caught;choose chose;cling clung;
come came;creep crept;deal dealt;dig dug;do did;draw drew;drink drank;drive drove;eat ate;fall fell;
feed fed;feel felt;fight fought;find found;flee fled;fling flung;fly flew;forbid forbade;forget forgot;
forgive forgave;forsake forsook;freeze froze;get got;give gave;go went;grind ground;grow grew;have had;
hear heard;hide hid;hold held;keep kept;know knew;lay laid;lead led;leave left;lend lent;lose lost;
make made;mean meant;meet met;mislead misled;overcome overcame;pay paid;ride rode;ring rang;rise rose;
run ran;say said;see saw;seek sought;sell sold;send sent;shake shook;shine shone;shoot shot;shrink shrank;
sing sang;sink sank;sit sat;slay slew;sleep slept;slide slid;sling slung;speak spoke;spend spent;spin spun;
spring sprang;stand stood;steal stole;stick stuck;sting stung;stink stank;stride strode;strike struck;
string strung;strive strove;swear swore;sweep swept;swim swam;swing swung;take took;teach taught;tear tore;
tell told;think thought;throw threw;tread trod;understand understood;undo undid;wake woke;wear wore;
weave wove;weep wept;win won;wind wound;withdraw withdrew;write wrote
"""

_ONES = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> tuple[str, ...]:
    """English words for 1 ≤ n ≤ 999: canonical (hyphenated, no "and"), then the British "and" form."""
    if not 1 <= n <= 999:
        raise ValueError(n)
    hundreds, rest = divmod(n, 100)
    if rest < 20:
        tail = _ONES[rest]
    else:
        tens, ones = divmod(rest, 10)
        tail = _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if not hundreds:
        return (tail,)
    head = f"{_ONES[hundreds]} hundred"
    return (f"{head} {tail}", f"{head} and {tail}") if tail else (head,)


def _split(block: str, sep: str) -> list[str]:
    return [part.strip() for part in block.replace("\n", sep).split(sep) if part.strip()]


def capitals() -> list[Fact]:
    rows = [line.split(";") for line in _COUNTRIES.strip().splitlines()]
    return [Fact(country, tuple(capital.split("|"))) for country, capital, _ in rows if capital]


def continents() -> list[Fact]:
    rows = [line.split(";") for line in _COUNTRIES.strip().splitlines()]
    return [Fact(country, CONTINENT_ALIASES.get(cont, (cont,))) for country, _, cont in rows if cont]


def elements() -> list[Fact]:
    out = []
    for entry in _split(_ELEMENTS, ";"):
        symbol, names = entry.split(" ", 1)
        out.append(Fact(symbol, tuple(names.split("|"))))
    return out


def past_tenses() -> list[Fact]:
    return [Fact(base, (past,)) for base, past in (entry.split(" ") for entry in _split(_VERBS, ";"))]


def numbers(first: int = 21, last: int = 140) -> list[Fact]:
    return [Fact(str(n), number_words(n)) for n in range(first, last + 1)]
