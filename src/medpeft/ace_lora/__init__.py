"""ACE-LoRA (arXiv 2603.17079): LoRA in q/k/v of both BiomedCLIP encoders, the ACE-HGNN hypergraph and a
label-guided InfoNCE loss, with the released checkpoint format."""

from medpeft.ace_lora.config import AceLoraConfig
from medpeft.ace_lora.model import AceLoraModel

__all__ = ["AceLoraConfig", "AceLoraModel"]
