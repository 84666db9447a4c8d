"""Text units: the espeak-ng phone front end, a phone CTC recogniser that aligns, and TTS that speaks
from phones (letters stay the default and older letter models still load: test_legacy)."""

import gzip
import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from uniwav.cli.main import main
from uniwav.data.frontend import WORD, FrontEndError, TextFrontEnd

from conftest import SMALL_OVERRIDES

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")


def test_phones_are_deterministic_keep_word_boundaries_and_spell_numbers():
    en = TextFrontEnd("phone", "en-us")
    tokens = en.tokens("The cat sat, quickly.")
    assert tokens == en.tokens("the cat sat quickly") and tokens.count(WORD) == 3  # punctuation and case do not matter
    assert en.render(tokens) == "ðə kæt sæt kwɪkli"
    assert en.tokens("9 cats") == en.tokens("nine cats") and en.tokens("50%") == en.tokens("fifty percent")
    de = TextFrontEnd("phone", "de")
    assert de.tokens("Ich habe 2 Katzen") == de.tokens("ich habe zwei Katzen") and "ç" in de.tokens("ich")
    assert TextFrontEnd().tokens("Hello, 2 cats") == list("hello two cats")  # the default unit is unchanged
    assert TextFrontEnd.parse_phonemes("h ə l oʊ | w ɜː l d") == ["h", "ə", "l", "oʊ", WORD, "w", "ɜː", "l", "d"]


@pytest.mark.parametrize("make, message", [
    (lambda: TextFrontEnd("phone", "xx-nowhere").tokens("hello"), 'language "xx-nowhere" is not supported'),
    (lambda: TextFrontEnd("phone").tokens("... !"), "gives no phones"),
    (lambda: TextFrontEnd("word"), "unknown text unit 'word'"),
    (lambda: TextFrontEnd.parse_phonemes(" | "), "no phones"),
])
def test_what_cannot_become_phones_is_refused_in_one_line(make, message):
    with pytest.raises(FrontEndError, match=message):
        make()


def test_phone_recogniser_aligns_and_phone_tts_speaks_text_and_phonemes(demo_data, tmp_path, capsys):
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tts import TTSModel

    from test_asr import ASR_OVERRIDES

    pre, asr, align, tts = (tmp_path / n for n in ("pre", "asr", "align", "tts"))
    assert main(["pretrain", "--data", str(demo_data), "--out", str(pre), "--max-steps", "2", "--no-progress", *SMALL_OVERRIDES]) == 0
    overrides = [o for o in ASR_OVERRIDES if not o.startswith(("model.encoder.", "model.features."))]
    assert main(["finetune-asr", "--init", str(pre), "--units", "phone", "--data", str(demo_data), "--out", str(asr), "--max-steps", "2",
                 "--no-progress", *overrides, "val_every=2"]) == 0
    recogniser = CTCModel.from_pretrained(asr)
    assert (recogniser.cfg.unit, recogniser.cfg.language) == ("phone", "en-us") and "ð" in recogniser.vocab.symbols
    result = tmp_path / "eval.json"
    assert main(["evaluate", "asr", "--model", str(asr), "--data", str(demo_data), "--split", "test", "--json", str(result)]) == 0
    from uniwav.data.manifests import load_cuts

    row = json.loads(result.read_text())["per_utterance"][0]
    text = {c.id: c.supervisions[0].text for c in load_cuts(demo_data, "test")}[row["id"]]
    assert row["ref"] == TextFrontEnd("phone").render(TextFrontEnd("phone").tokens(text)) != text  # scored on phones
    assert main(["align", "--model", str(asr), "--data", str(demo_data), "--out", str(align)]) == 0
    with gzip.open(align / "train.jsonl.gz", "rt") as f:
        first = json.loads(f.readline())
    assert first["unit"] == "phone" and len(first["spans"]) == len(first["tokens"]) and WORD in first["tokens"]
    assert main(["analyze", "layers", "--model", str(pre), "--data", str(demo_data), "--alignments", str(align), "--out", str(tmp_path / "an"),
                 "--max-train-utterances", "8", "--units", "5"]) == 0
    layers = json.loads((tmp_path / "an" / "layers.json").read_text())
    assert layers["unit"] == "phone" and {"probe_accuracy", "nmi_text", "nmi_speaker"} <= set(layers["layers"][0])  # labels are phones

    args = ["finetune-tts", "--init", str(pre), "--data", str(demo_data), "--alignments", str(align), "--out", str(tts), "--no-progress",
            "--max-steps", "2", "data.num_workers=0", "data.max_duration=6", "optim.warmup_steps=1", "trainer.sample_every=1000",
            "model.text_dim=8", "model.duration_dim=8"]
    assert main(args) == 0
    model = TTSModel.from_pretrained(tts)
    assert (model.cfg.unit, model.cfg.language) == ("phone", "en-us") and "ð" in model.cfg.vocab
    assert len(model.encode_text("the cat")) == 1 + len(TextFrontEnd("phone").tokens("the cat"))

    sf.write(tmp_path / "prompt.wav", load_cuts(demo_data, "test")[0].load_audio()[0], 16000)
    for what in (["--text", "The cat sat."], ["--phonemes", "ð ə | k æ t"]):
        out = tmp_path / "out.wav"
        assert main(["tts", "--model", str(tts), "--prompt", str(tmp_path / "prompt.wav"), *what, "-o", str(out), "--nfe", "2"]) == 0
        assert sf.info(str(out)).frames > 0
    capsys.readouterr()
    assert main(["tts", "--model", str(tts), "--prompt", str(tmp_path / "prompt.wav"), "--phonemes", "q̃ | x", "-o", str(out)]) == 2
    assert "are not in the TTS vocabulary" in capsys.readouterr().err


def test_another_language_keeps_its_letters_and_spells_numbers_in_it():
    from uniwav.data.text import normalize_text, unspoken_characters

    assert normalize_text("Über 42 Straßen, ja?", "de") == "über zweiundvierzig straßen ja"
    assert normalize_text("Über 42 Straßen") == "uber forty two stra en"  # English letters, as before
    assert unspoken_characters("Straße 5", "de") == [] and unspoken_characters("Straße") == ["ß"]
    de = TextFrontEnd("phone", "de")
    tokens = de.tokens("Über zwei Straßen")
    assert tokens[0] == "yː" and "ʃ" in tokens and tokens.count(WORD) == 2  # German phones: ü, sch


def test_german_demo_corpus_is_german(tmp_path):
    from uniwav.data.manifests import load_cuts
    from uniwav.data.prepare_demo import prepare_demo

    if not any(Path("/usr/share/games/fortunes/de").glob("*.u8")):
        pytest.skip("fortunes-de is not installed (apt-get install fortunes-de; install.sh installs it)")
    report = prepare_demo(tmp_path / "de", minutes=0.6, num_speakers=4, test_speakers=1, dev_speakers=1, progress=False, language="de")
    assert report.language == "de" and "language=de" in report.source
    texts = " ".join(s.text for c in load_cuts(tmp_path / "de", "train") for s in c.supervisions)
    assert set(texts) & set("äöüß") and set(texts) <= set("abcdefghijklmnopqrstuvwxyzäöüß' ")  # German letters, kept


def test_every_demo_sentence_starts_with_a_letter():  # espeak-ng would read "- Ja, ..." as an option
    from uniwav.data.prepare_demo import load_sentences

    if not any(Path("/usr/share/games/fortunes/de").glob("*.u8")):
        pytest.skip("fortunes-de is not installed")
    assert all(s[0].isalpha() for s in load_sentences("de") + load_sentences("en"))
