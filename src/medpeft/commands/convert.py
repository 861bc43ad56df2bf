"""`medpeft convert`: released ACE-LoRA ``.pt`` <-> medpeft adapter folder."""

from __future__ import annotations

import argparse

from medpeft.commands import options

_DESCRIPTION = """\
Convert an ACE-LoRA adapter between the two formats. The direction follows SRC:

  a released .pt checkpoint  ->  an adapter folder (adapter_config.json + adapter_model.safetensors)
  an adapter folder          ->  a .pt file in the released format (runs in the authors' scripts)

Every key, shape and the metadata are checked on the way in; nothing is unpickled but tensors.
No backbone weights are downloaded: an adapter holds none, so the conversion runs on the backbone's
architecture (biomedclip-arch for BiomedCLIP adapters). Without --backbone: biomedclip-arch for a .pt, the
backbone recorded in adapter_config.json for a folder. SRC may name an adapter on the Hugging Face Hub
(fetched into the HF cache; HF_HUB_OFFLINE=1 uses the cache only).
"""

_EPILOG = """\
examples:
  medpeft convert ace_lora_released.pt adapters/ace-lora
  medpeft convert runs/paper/adapter ace_lora_mine.pt
  medpeft convert runs/tiny/adapter tiny.pt --backbone runs/tiny/backbone
  medpeft convert hf-hub:ORG/NAME/ACE_LoRA.pt adapters/ace-lora    # a released .pt kept in a Hub repo
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="released .pt checkpoint <-> adapter folder",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "src",
        metavar="SRC",
        help="a released .pt checkpoint or an adapter folder, local or on the Hugging Face Hub "
        "(ORG/NAME, hf-hub:ORG/NAME[/FILE.pt][@REVISION])",
    )
    p.add_argument("dst", metavar="DST", help="the adapter folder or .pt file to write")
    options.add_backbone(p, required=False)
    options.add_overwrite(p, what="an existing DST")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medpeft.ace_lora.conversion import convert

    out = convert(args.src, args.dst, backbone=args.backbone, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
