"""tokenize(): identical ids to OpenAI's tokenizer over a varied corpus."""
import pytest
import torch

from clip import clip
from clip.simple_tokenizer import SimpleTokenizer
from tests.oracles import openai_clip

# Class names of the benchmarks (a spread of each dataset's style, with the
# renamings the loaders apply) and the CoOp-family prompt forms.
CLASS_NAMES = [
    # Caltech101 / ImageNet style
    "face", "leopard", "motorbike", "airplane", "accordion", "anchor", "ant", "barrel", "bass",
    "beaver", "binocular", "bonsai", "brain", "brontosaurus", "buddha", "butterfly", "camera",
    "cannon", "car_side", "ceiling_fan", "cellphone", "chair", "chandelier", "cougar_body",
    "cougar_face", "crab", "crayfish", "crocodile", "crocodile_head", "cup", "dalmatian",
    "dollar_bill", "dolphin", "dragonfly", "electric_guitar", "elephant", "emu", "euphonium",
    "ewer", "ferry", "flamingo", "flamingo_head", "garfield", "gerenuk", "gramophone",
    "grand_piano", "hawksbill", "headphone", "hedgehog", "helicopter", "ibis", "inline_skate",
    "joshua_tree", "kangaroo", "ketch", "lamp", "laptop", "llama", "lobster", "lotus",
    "mandolin", "mayfly", "menorah", "metronome", "minaret", "nautilus", "octopus", "okapi",
    "pagoda", "panda", "pigeon", "pizza", "platypus", "pyramid", "revolver", "rhino", "rooster",
    "saxophone", "schooner", "scissors", "scorpion", "sea_horse", "snoopy", "soccer_ball",
    "stapler", "starfish", "stegosaurus", "stop_sign", "strawberry", "sunflower", "tick",
    "trilobite", "umbrella", "watch", "water_lilly", "wheelchair", "wild_cat", "windsor_chair",
    "wrench", "yin_yang", "tench", "goldfish", "great white shark", "Saint Bernard",
    "Bouvier des Flandres", "Yorkshire Terrier", "French horn", "Granny Smith",
    # OxfordPets (lower-cased breeds)
    "abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle",
    "bengal", "birman", "bombay", "boxer", "british_shorthair", "chihuahua", "egyptian_mau",
    "english_cocker_spaniel", "great_pyrenees", "japanese_chin", "keeshond", "leonberger",
    "maine_coon", "miniature_pinscher", "newfoundland", "persian", "pomeranian", "pug",
    "ragdoll", "russian_blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu",
    "siamese", "sphynx", "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
    # StanfordCars (year first)
    "2000 AM General Hummer SUV", "2012 Acura RL Sedan", "2012 Aston Martin V8 Vantage Convertible",
    "2012 BMW M3 Coupe", "1993 Geo Metro Convertible", "2007 Chevrolet Express Cargo Van",
    "2012 Mercedes-Benz Sprinter Van", "2012 Ram C/V Cargo Van Minivan", "2009 Spyker C8 Coupe",
    # OxfordFlowers
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea",
    "english marigold", "tiger lily", "moon orchid", "bird of paradise", "monkshood",
    "globe thistle", "snapdragon", "colt's foot", "king protea", "spear thistle",
    "yellow iris", "globe-flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger",
    "grape hyacinth", "corn poppy", "prince of wales feathers", "stemless gentian",
    "artichoke", "sweet william", "carnation", "garden phlox", "love in the mist",
    "mexican aster", "alpine sea holly", "ruby-lipped cattleya", "cape flower",
    "great masterwort", "siam tulip", "lenten rose", "barbeton daisy", "daffodil",
    "sword lily", "poinsettia", "bolero deep blue", "wallflower", "marigold", "buttercup",
    "oxeye daisy", "common dandelion", "petunia", "wild pansy", "primula", "sunflower",
    # Food101
    "apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad",
    "beignets", "bibimbap", "bread_pudding", "breakfast_burrito", "bruschetta", "caesar_salad",
    "cannoli", "caprese_salad", "carrot_cake", "ceviche", "cheese_plate", "cheesecake",
    "chicken_curry", "chicken_quesadilla", "crème brûlée", "creme_brulee", "croque_madame",
    "eggs_benedict", "escargots", "falafel", "filet_mignon", "foie_gras", "french_fries",
    "huevos_rancheros", "macarons", "pho", "poutine", "takoyaki", "tiramisu",
    # FGVCAircraft (variants)
    "707-320", "727-200", "737-200", "747-400", "A300B4", "A340-300", "ATR-42", "BAE 146-200",
    "BAE-125", "Beechcraft 1900", "Boeing 717", "C-130", "C-47", "CRJ-200", "Cessna 172",
    "DC-10", "DC-3", "DH-82", "DHC-1", "DR-400", "Dornier 328", "E-170", "EMB-120",
    "Embraer Legacy 600", "Eurofighter Typhoon", "F-16A/B", "F/A-18", "Falcon 2000",
    "Fokker 100", "Global Express", "Gulfstream IV", "Hawk T1", "Il-76", "L-1011", "MD-11",
    "Metroliner", "Model B200", "PA-28", "SR-20", "Saab 340", "Spitfire", "Tornado", "Tu-134",
    "Tu-154", "Yak-42",
    # SUN397 (reversed parts)
    "abbey", "outdoor apartment_building", "indoor apse", "aquarium", "aqueduct", "arch",
    "archive", "outdoor arrival_gate", "art_gallery", "art_school", "art_studio",
    "assembly_line", "outdoor athletic_field", "public atrium", "attic", "auditorium",
    "auto_factory", "badlands", "indoor badminton_court", "baggage_claim", "shop bakery",
    "exterior balcony", "interior balcony", "ball_pit", "ballroom", "bamboo_forest",
    # DTD
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked",
    "crosshatched", "crystalline", "dotted", "fibrous", "flecked", "frilly", "gauzy", "grid",
    "grooved", "honeycombed", "interlaced", "knitted", "lacelike", "lined", "marbled", "matted",
    "meshed", "paisley", "perforated", "pitted", "pleated", "polka-dotted", "porous", "potholed",
    "scaly", "smeared", "spiralled", "sprinkled", "stained", "stratified", "striped", "studded",
    "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged",
    # EuroSAT (renamed)
    "Annual Crop Land", "Forest", "Herbaceous Vegetation Land", "Highway or Road",
    "Industrial Buildings", "Pasture Land", "Permanent Crop Land", "Residential Buildings",
    "River", "Sea or Lake",
    # UCF101 (renamed actions)
    "Apply_Eye_Makeup", "Apply_Lipstick", "Archery", "Baby_Crawling", "Balance_Beam",
    "Band_Marching", "Baseball_Pitch", "Basketball_Dunk", "Blow_Dry_Hair", "Body_Weight_Squats",
    "Handstand_Pushups", "Jumping_Jack", "Playing_Daf", "Pommel_Horse", "Yo_Yo", "Tai_Chi",
]

TEXTS = [
    "a photo of a dog.", "A PHOTO OF A DOG.", "   lots   of\tspaces\n\nand newlines  ",
    "café crème brûlée naïve façade São Paulo Zürich Ελληνικά русский 日本語の文章 한국어",
    "emoji 🐶🐱🚀 👩‍👩‍👧‍👦 ❤️ flags 🇫🇷",
    "HTML &amp; entities &lt;b&gt; &amp;amp; &#39;quoted&#39; &quot;x&quot;",
    "numbers 3.14159 and 1,000,000 and 2nd 3rd", "it's they're we've I'm you'll he'd",
    "punctuation!!! ??? ... --- ;;; (brackets) [square] {curly}", "mojibake â€™ fixed by ftfy",
    "tabs\tand\x0bcontrol\x0cchars", "<|startoftext|> literal special <|endoftext|>", "",
    "X X X X a bird.", "a photo of a {}, a type of pet.".format("great_pyrenees"),
]


@pytest.fixture(scope="module")
def oracle():
    return openai_clip()


def test_ids_identical_to_openai_over_corpus(oracle):
    corpus = TEXTS + CLASS_NAMES + [n.replace("_", " ") for n in CLASS_NAMES] + [
        f"a photo of a {n.replace('_', ' ')}." for n in CLASS_NAMES]
    ours = clip.tokenize(corpus)
    theirs = oracle.tokenize(corpus)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == (len(corpus), 77)
    assert torch.equal(ours, theirs)


def test_encoder_decoder_tables_identical(oracle):
    ours = SimpleTokenizer()
    theirs = oracle.simple_tokenizer.SimpleTokenizer()
    assert ours.encoder == theirs.encoder and len(ours.encoder) == 49408
    assert ours.decode(ours.encode("a photo of a dog.")) == theirs.decode(theirs.encode("a photo of a dog."))


def test_long_text_truncates_or_raises(oracle):
    long_text = " ".join(["photograph"] * 60 + ["🐶"] * 30)
    ours = clip.tokenize([long_text, "short"], truncate=True)
    theirs = oracle.tokenize([long_text, "short"], truncate=True)
    assert torch.equal(ours, theirs)
    assert ours[0, -1].item() == 49407  # ends with end-of-text
    with pytest.raises(RuntimeError, match="too long for context length 77"):
        clip.tokenize(long_text)
    assert torch.equal(clip.tokenize("x", context_length=5), oracle.tokenize("x", context_length=5))
