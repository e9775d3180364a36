"""What the shipped configs promise: the seed recipe's prompt is the seed's, word for word."""

import re

import yaml

from conftest import ROOT


def test_seed_recipe_uses_the_seed_model_cards_system_prompt(seed_card):
    text = seed_card.read_text(encoding="utf-8")
    seed = re.search(r"\*\*SYSTEM PROMPT:\*\*\s*\n\s*\n(.+?)\n", text).group(1).strip()
    config = yaml.safe_load((ROOT / "configs" / "seed_recipe.yaml").read_text(encoding="utf-8"))
    assert config["data"]["prompt"]["system_prompt"] == seed
    assert seed.startswith("You are a tweet sentiment classifier.") and seed.endswith("Do not include any extra text.")
