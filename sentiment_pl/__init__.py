"""Fine-tune small chat LLMs (QLoRA, PyTorch Lightning) to classify the sentiment of tweets."""

__version__ = "0.1.0"
