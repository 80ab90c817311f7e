"""Where the course's real data and weights come from, with the publishers' checksums.

Every checksum below was copied from the publisher's own code, never computed by us,
and `checksum_from` says where. These machines cannot download the files; the checks
run on the machine that fetches them (`python -m data_scripts.fetch --all`).

| data set | publisher | licence | checksum |
| --- | --- | --- | --- |
| medical: PneumoniaMNIST | MedMNIST v2 / MedMNIST+ (Zenodo record 10519652) | CC BY 4.0 | MD5, MedMNIST `medmnist/info.py` |
| satellite: EuroSAT RGB | Helber et al., mirrored by torchgeo on Hugging Face | MIT | MD5, torchvision `datasets/eurosat.py` |
| retail: Fashion-MNIST | Zalando Research | MIT | MD5, torchvision `datasets/mnist.py` |
| photos (lesson 01) | scikit-image sample images | CC0 / public domain | SHA-256, scikit-image `skimage/data/_registry.py` |
| ImageNet weights | torchvision | BSD-3 (code); see each model's weights docs | SHA-256 prefix in the file name |
| pedestrians (lesson 12): Penn-Fudan | University of Pennsylvania (Wang, Shi, Song, Shen 2007) | none known (not checked at the source); cite the paper | none published: SHA-256 recorded on the first download |
| COCO detector weights (lesson 12) | torchvision | BSD-3 (code); COCO annotations CC BY 4.0 | SHA-256 prefix in the file name |
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Source", "DATASETS", "MEDICAL", "SATELLITE", "RETAIL", "PHOTOS", "WEIGHTS",
           "EUROSAT_COUNTS", "MEDMNIST_SIZES", "weight_sources", "PENNFUDAN", "DETECTOR_WEIGHTS"]


@dataclass(frozen=True)
class Source:
    """One file to download: `path` is relative to the data cache (or to the hub cache for weights)."""
    path: str
    url: str
    md5: str | None = None
    sha256: str | None = None
    checksum_from: str = ""
    mirrors: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        """The main URL first, then the mirrors."""
        return (self.url, *self.mirrors)


# --- medical: PneumoniaMNIST ----------------------------------------------------------------------
# URLs and MD5s: MedMNIST/MedMNIST, medmnist/info.py, __version__ "3.0.2" (commit 3bb56be6),
# INFO["pneumoniamnist"]: keys url / MD5 (28 px) and url_64 / MD5_64, url_128 / MD5_128,
# url_224 / MD5_224 (the MedMNIST+ sizes). The 28 px MD5 is the same in MedMNIST 2.1.0.
_MEDMNIST_FROM = "MedMNIST/MedMNIST medmnist/info.py v3.0.2, INFO['pneumoniamnist']"
_ZENODO = "https://zenodo.org/records/10519652/files"
MEDMNIST_SIZES = (28, 64, 128, 224)
MEDICAL: dict[int, Source] = {
    28: Source("medmnist/pneumoniamnist.npz", f"{_ZENODO}/pneumoniamnist.npz?download=1",
               md5="28209eda62fecd6e6a2d98b1501bb15f", checksum_from=_MEDMNIST_FROM + "['MD5']"),
    64: Source("medmnist/pneumoniamnist_64.npz", f"{_ZENODO}/pneumoniamnist_64.npz?download=1",
               md5="8f4eceb4ccffa70c672198ea285246c6", checksum_from=_MEDMNIST_FROM + "['MD5_64']"),
    128: Source("medmnist/pneumoniamnist_128.npz", f"{_ZENODO}/pneumoniamnist_128.npz?download=1",
                md5="05b46931834c231683c68f40c47b2971", checksum_from=_MEDMNIST_FROM + "['MD5_128']"),
    224: Source("medmnist/pneumoniamnist_224.npz", f"{_ZENODO}/pneumoniamnist_224.npz?download=1",
                md5="d6a3c71de1b945ea11211b03746c1fe1", checksum_from=_MEDMNIST_FROM + "['MD5_224']"),
}

# --- satellite: EuroSAT RGB -----------------------------------------------------------------------
# URL and MD5: torchvision 0.29.1, torchvision/datasets/eurosat.py, EuroSAT.download(). The old
# host (madm.dfki.de) let its certificate expire; torchvision moved to this Hugging Face mirror,
# pinned to a commit. The zip holds 2750/<class>/<class>_<i>.jpg, 64x64 RGB JPEGs.
SATELLITE = Source(
    "eurosat/EuroSAT.zip",
    "https://huggingface.co/datasets/torchgeo/eurosat/resolve/c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
    md5="c8fa014336c82ac7804f0398fcb19387",
    checksum_from="torchvision 0.29.1 torchvision/datasets/eurosat.py, EuroSAT.download()")
# Images per class (Helber et al. 2019, table of EuroSAT classes); files are numbered 1..count.
EUROSAT_COUNTS = {"AnnualCrop": 3000, "Forest": 3000, "HerbaceousVegetation": 3000, "Highway": 2500,
                  "Industrial": 2500, "Pasture": 2000, "PermanentCrop": 2500, "Residential": 3000,
                  "River": 2500, "SeaLake": 3000}

# --- retail: Fashion-MNIST ------------------------------------------------------------------------
# File names and MD5s: torchvision 0.29.1, torchvision/datasets/mnist.py, FashionMNIST.resources;
# host: FashionMNIST.mirrors (Zalando's S3 bucket). Stored where torchvision looks for them.
_FASHION_FROM = "torchvision 0.29.1 torchvision/datasets/mnist.py, FashionMNIST.resources"
_FASHION_HOST = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
RETAIL: dict[str, Source] = {
    name: Source(f"FashionMNIST/raw/{name}", f"{_FASHION_HOST}/{name}", md5=md5, checksum_from=_FASHION_FROM)
    for name, md5 in [("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                      ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                      ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                      ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")]
}

# --- photos for lesson 01 -------------------------------------------------------------------------
# scikit-image's sample photos, pinned to the v0.24.0 tag. SHA-256: scikit-image
# skimage/data/_registry.py, `registry["data/<name>"]` (the same values ship in the 0.24.0 wheel on
# PyPI, whose files we hashed to confirm them). Licences, from the docstrings in
# skimage/data/_fetchers.py: chelsea (tabby cat) CC0 by Stefan van der Walt; coffee (cup) CC0 by
# Rachel Michetti; astronaut (Eileen Collins, NASA) public domain; rocket (Falcon 9 launch, SpaceX)
# public domain.
_SKIMAGE = "https://github.com/scikit-image/scikit-image/raw/v0.24.0/skimage/data"
_SKIMAGE_FROM = "scikit-image v0.24.0 skimage/data/_registry.py, registry['data/{}']"
PHOTOS: dict[str, Source] = {
    name: Source(f"photos/{name}", f"{_SKIMAGE}/{name}", sha256=sha, checksum_from=_SKIMAGE_FROM.format(name))
    for name, sha in [("chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
                      ("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
                      ("astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
                      ("rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c")]
}
PHOTO_LICENCES = {"chelsea.png": "CC0 (Stefan van der Walt)", "coffee.png": "CC0 (Rachel Michetti)",
                  "astronaut.png": "public domain (NASA)", "rocket.jpg": "public domain (SpaceX)"}

# --- ImageNet weights used by the lessons ---------------------------------------------------------
# Resolved at run time from torchvision's weights enums; the 8 hex digits after the last '-' of
# each file name are the start of its SHA-256 (torch.hub checks the same prefix).
WEIGHTS = ["ResNet18_Weights.IMAGENET1K_V1", "ResNet50_Weights.DEFAULT", "MobileNet_V3_Small_Weights.DEFAULT",
           "MobileNet_V3_Large_Weights.DEFAULT", "EfficientNet_B0_Weights.DEFAULT",
           "ConvNeXt_Tiny_Weights.DEFAULT", "VGG16_Weights.DEFAULT"]


def weight_sources(names: list[str] = WEIGHTS) -> list[Source]:
    """One `Source` per weights enum name: the URL from torchvision, the SHA-256 prefix from the file name.

    `path` is the file name inside torch's hub cache (`torch.hub.get_dir()/checkpoints`).
    """
    import re

    from torchvision.models import get_weight

    out = []
    for name in names:
        url = get_weight(name).url
        filename = url.rsplit("/", 1)[-1]
        prefix = re.search(r"-([a-f0-9]{8,})\.", filename)
        out.append(Source(filename, url, sha256=prefix.group(1) if prefix else None,
                          checksum_from=f"torchvision {name}: SHA-256 prefix in the file name"))
    return out


# --- lesson 12: pedestrians and a COCO detector ---------------------------------------------------
# Penn-Fudan: the URL torchvision's detection tutorial downloads. The page publishes no checksum,
# so `sha256` stays None here; ftlib/course/pennfudan.py records the SHA-256 of the first download
# and checks every later one against that record.
PENNFUDAN = Source("pennfudan/PennFudanPed.zip", "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
                   checksum_from="none published by the Penn-Fudan page; the SHA-256 seen on the first "
                                 "download, recorded in pennfudan/PennFudanPed.zip.sha256")
# The detector whose box predictor lesson 12 replaces (74 MB per torchvision), resolved like WEIGHTS.
DETECTOR_WEIGHTS = ["FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1"]


# Everything the fetch command knows, by name.
DATASETS = {
    "medical": {"title": "PneumoniaMNIST (MedMNIST v2)", "licence": "CC BY 4.0",
                "homepage": "https://medmnist.com/", "files": MEDICAL},
    "satellite": {"title": "EuroSAT RGB", "licence": "MIT",
                  "homepage": "https://github.com/phelber/eurosat", "files": {"zip": SATELLITE}},
    "retail": {"title": "Fashion-MNIST (Zalando product images)", "licence": "MIT",
               "homepage": "https://github.com/zalandoresearch/fashion-mnist", "files": RETAIL},
    "photos": {"title": "scikit-image sample photos", "licence": "CC0 / public domain",
               "homepage": "https://scikit-image.org/docs/stable/api/skimage.data.html", "files": PHOTOS},
}
