"""The builtin models: real SD3 pipelines that need no download and no GPU.

- `builtin:shapes`, the default: SD3's architecture, small, trained here on synthetic scenes
  (server.training), so it paints what a prompt of shapes, colours, sizes and positions says ("a
  large red circle on a blue background, top left"), and its live preview shows the scene
  forming. Its weights ship in the package (`builtin_shapes/`, safetensors, loaded as they are).
- `builtin:tiny`: the same architecture at its smallest with seeded random weights, whose pictures
  are noise; the fastest, for tests that need the whole service but no picture. It is built once
  in code, written with `save_pretrained` into the data directory (deterministic: the same seed
  gives a byte-identical folder), and loaded from there.

Either way the folder is loaded by `server.engine.loader` through the same `from_pretrained` path
real weights take. Every component keeps SD3's conventions (16 latent channels, flow matching with
shift 3.0, two CLIP encoders and T5); only sizes and vocabularies are small.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

# (each from its own module: mypy takes diffusers' top-level names for its no-torch placeholders)
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.transformers.transformer_sd3 import SD3Transformer2DModel
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import StableDiffusion3Pipeline
from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
from transformers import (
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

# SD3's CLIP encoders take 77 tokens; without this in the tokenizer config the pipeline asks the
# tokenizer for its (huge) default length and overflows the position embeddings.
CLIP_MAX_LENGTH = 77
CLIP_WIDTHS = (32, 64)  # stands in for CLIP-L (768) and OpenCLIP bigG (1280)
T5_WIDTH = 128  # stands in for T5-XXL (4096); must be >= sum(CLIP_WIDTHS): the pipeline zero-pads CLIP to it
HEADS, HEAD_DIM = 2, 16
LATENT_CHANNELS = 16
VAE_SCALING_FACTOR = 1.5305
VAE_SHIFT_FACTOR = 0.0609
SCHEDULER_SHIFT = 3.0


@dataclasses.dataclass(frozen=True, slots=True)
class BuiltinModel:
    """One builtin model: a folder that ships in the package, or one built from a seed into
    `<data_dir>/models/<folder>` on first use."""

    folder: str
    seed: int = 0
    build: Callable[[int], StableDiffusion3Pipeline] | None = None
    packaged: Path | None = None


def _clip_tokenizer(words: tuple[str, ...] = (), length: int = CLIP_MAX_LENGTH) -> CLIPTokenizer:
    """A byte-level CLIP tokenizer whose whole vocabulary is written here, so nothing is downloaded.

    With no merges every byte is its own token: the 256 byte characters, their 256 end-of-word
    (`</w>`) forms, then the two specials. Real CLIP has 49408 tokens; the text encoders only need
    the ids to be consistent with their embedding tables. Each of `words` gets the BPE merges
    that spell it, so it reads as one token (`red</w>`) and any other word still as bytes.
    """
    symbols = _byte_symbols()
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": len(symbols) + index for index, symbol in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        # A word is spelt by the merges so far (lowest rank first, as BPE does); each new merge
        # ranks after them all, so it never changes how an earlier word is read.
        while len(pieces := _merged([*word[:-1], word[-1] + "</w>"], ranks)) > 1:
            ranks[(pieces[0], pieces[1])] = len(ranks)
            vocab.setdefault(pieces[0] + pieces[1], len(vocab))
    # (transformers annotates `merges` as strings; the BPE model it builds takes these pairs)
    return CLIPTokenizer(vocab=vocab, merges=list(ranks), model_max_length=length)  # type: ignore[arg-type]


def _merged(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    while pairs := [(ranks[pair], i) for i, pair in enumerate(zip(pieces, pieces[1:])) if pair in ranks]:
        _, i = min(pairs)
        pieces = [*pieces[:i], pieces[i] + pieces[i + 1], *pieces[i + 2 :]]
    return pieces


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each byte value 0..255, in byte order.

    Printable Latin-1 bytes stand for themselves; the rest are mapped to code points from 256 up,
    in order. (transformers 5 no longer exports its copy of this table.)
    """
    printable = [*range(0x21, 0x7E + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    symbols: dict[int, str] = {byte: chr(byte) for byte in printable}
    extra = 256
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(extra)
            extra += 1
    return [symbols[byte] for byte in range(256)]


def _t5_tokenizer(words: tuple[str, ...] = ()) -> T5Tokenizer:
    """A T5 tokenizer on a small Unigram vocabulary (built by the `tokenizers` library inside).

    T5's fixed ids are kept: `<pad>`=0, `</s>`=1, `<unk>`=2. Then the word-start marker and the
    printable ASCII characters, so any ASCII prompt tokenizes without `<unk>`. `words` become whole
    pieces, each likelier than its spelling, so a model trained on them reads a word as one token
    rather than as letters.
    """
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(chr(code), -3.0) for code in range(ord("!"), ord("~") + 1)]
    pieces += [("\u2581" + word, -1.0) for word in words]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def _clip_encoder(width: int, vocab_size: int, tokenizer: CLIPTokenizer, act: str) -> CLIPTextModelWithProjection:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=2 * width,
        projection_dim=width,
        num_hidden_layers=2,  # the pipeline reads the penultimate hidden state
        num_attention_heads=2,
        max_position_embeddings=tokenizer.model_max_length,
        hidden_act=act,
        bos_token_id=tokenizer.bos_token_id,
        # The pooled output is taken at the first EOS token: with a wrong id it silently pools
        # some other position (transformers treats the legacy id 2 as "argmax of the ids").
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModelWithProjection(config)


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    """What differs between the builtin architectures; everything else is SD3's, shared."""

    layers: int = 2
    # SD3 spaces its sincos positions (sample_size / patch) / pos_embed_max_size apart, so the
    # default size also sets how far apart neighbouring patches look: 1 when the two are equal.
    sample_size: int = 32
    heads: int = HEADS
    head_dim: int = HEAD_DIM
    patch: int = 2
    vae_channels: tuple[int, int, int, int] = (8, 8, 16, 16)
    vae_groups: int = 4
    vae_attention: bool = True
    # Words both tokenizers read whole (a trained model's vocabulary); the rest is spelt out.
    words: tuple[str, ...] = ()
    # The pipeline pads every prompt to this many CLIP tokens, and each is a token every block attends over.
    clip_tokens: int = CLIP_MAX_LENGTH


TINY = Sizes()


def build_tiny_pipeline(seed: int) -> StableDiffusion3Pipeline:
    """Build the tiny SD3 pipeline in memory, all weights drawn from `seed` (about 0.4 M parameters)."""
    return build_pipeline(seed, TINY)


def build_pipeline(seed: int, sizes: Sizes) -> StableDiffusion3Pipeline:
    """Build an SD3 pipeline of `sizes` in memory, all weights drawn from `seed`."""
    clip_tokenizer = _clip_tokenizer(sizes.words, sizes.clip_tokens)
    t5_tokenizer = _t5_tokenizer(sizes.words)
    vocab_size = len(clip_tokenizer)
    # Forked so that building never moves the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = _clip_encoder(CLIP_WIDTHS[0], vocab_size, clip_tokenizer, "quick_gelu")
        text_encoder_2 = _clip_encoder(CLIP_WIDTHS[1], vocab_size, clip_tokenizer, "gelu")
        text_encoder_3 = T5EncoderModel(
            T5Config(
                vocab_size=len(t5_tokenizer),
                d_model=T5_WIDTH,
                d_kv=32,
                d_ff=T5_WIDTH,
                num_layers=1,
                num_heads=2,
                feed_forward_proj="gated-gelu",  # T5 v1.1, as SD3's T5-XXL
                pad_token_id=t5_tokenizer.pad_token_id,
                eos_token_id=t5_tokenizer.eos_token_id,
                # (a key T5Config keeps from its **kwargs, which its dataclass_transform does not declare)
                decoder_start_token_id=t5_tokenizer.pad_token_id,  # type: ignore[call-arg]
            )
        )
        transformer = SD3Transformer2DModel(
            sample_size=sizes.sample_size,  # also the size a caller who gives none gets: 32 latents = 256 px
            patch_size=sizes.patch,
            in_channels=LATENT_CHANNELS,
            out_channels=LATENT_CHANNELS,
            num_layers=sizes.layers,
            attention_head_dim=sizes.head_dim,
            num_attention_heads=sizes.heads,
            caption_projection_dim=sizes.heads * sizes.head_dim,
            pooled_projection_dim=sum(CLIP_WIDTHS),  # the two pooled CLIP outputs, concatenated
            joint_attention_dim=T5_WIDTH,
            # Positions for 2048 px a side (the API's largest size); the table is saved with the weights.
            pos_embed_max_size=2048 // 8 // sizes.patch,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            # Four blocks make three 2x resamplings: SD3's VAE scale factor of 8.
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=sizes.vae_channels,
            layers_per_block=1,
            norm_num_groups=sizes.vae_groups,
            latent_channels=LATENT_CHANNELS,
            sample_size=256,
            scaling_factor=VAE_SCALING_FACTOR,
            shift_factor=VAE_SHIFT_FACTOR,
            use_quant_conv=False,  # SD3's VAE has neither quant conv
            use_post_quant_conv=False,
            mid_block_add_attention=sizes.vae_attention,
        )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SCHEDULER_SHIFT),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=clip_tokenizer,
        text_encoder_3=text_encoder_3,
        tokenizer_3=t5_tokenizer,
    )


# (What each knows, in words, is server.tasks.catalog.BUILTIN_MODELS: the API process says it without torch.)
BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "builtin:shapes": BuiltinModel(folder="builtin-shapes", packaged=Path(__file__).parent / "builtin_shapes"),
    "builtin:tiny": BuiltinModel(folder="builtin-tiny", seed=0, build=build_tiny_pipeline),
}


def ensure_builtin(name: str, data_dir: Path) -> Path:
    """Return the folder of builtin model `name`: the package's own for a packaged model, else the
    one under `data_dir/models`, built on first use.

    A built folder is written under a temporary name, flushed to disk, and renamed into place, so
    a crash (or power loss) mid-build never leaves a half folder that later loads would trip on.
    Two processes building at once are fine: the first rename wins and the other build is discarded.
    """
    spec = BUILTIN_MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown builtin model {name!r}; builtin models: {', '.join(sorted(BUILTIN_MODELS))}")
    if spec.packaged is not None:
        return spec.packaged
    assert spec.build is not None
    models = Path(data_dir) / "models"
    target = models / spec.folder
    if target.is_dir():
        return target
    models.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.", suffix=".tmp", dir=models))
    try:
        spec.build(spec.seed).save_pretrained(staging)
        _fsync_tree(staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            # Another builder got there first; its folder is byte-identical to ours.
        else:
            _fsync_dir(models)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under `root`, so the rename never publishes unwritten data."""
    for folder, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
