"""`avatarcam doctor`'s checkpoint checks: where the weights are, their size and md5, whether they load."""

from __future__ import annotations

import os
from pathlib import Path

from ..diagnostics import Check
from ..errors import CheckpointError
from ..paths import CHECKPOINT_NAME, checkpoint_candidates
from .locate import default_destination, manual_steps, megabytes, part_path
from .verify import KNOWN_MD5, cached_md5, verify_loads


def checkpoint_checks(explicit: str | os.PathLike | None = None, *, load: bool = True) -> list[Check]:
    """The first existing candidate is the one the app uses (required); other copies are
    reported as optional."""
    candidates = checkpoint_candidates(explicit)
    found = [p for p in candidates if p.is_file()]
    where = ", ".join(f"{p} ({'found' if p.is_file() else 'missing'})" for p in candidates)
    partials = [part_path(p) for p in candidates if part_path(p).is_file()]
    fix = f"run `avatarcam download-model` ({manual_steps(default_destination())})"
    checks: list[Check] = []
    if explicit and not Path(explicit).expanduser().is_file():
        checks.append(Check("checkpoint", False, f"--checkpoint {explicit}: no such file",
                            f"check the path, or drop --checkpoint and {fix}"))
    elif not found:
        extra = "".join(f"; an interrupted download is at {p} ({megabytes(p.stat().st_size)})" for p in partials)
        checks.append(Check("checkpoint", False, f"{CHECKPOINT_NAME} not found; searched {where}{extra}", fix))
        return checks
    else:
        detail = f"searched {where}"
        if partials:
            detail += "; interrupted download(s): " + ", ".join(map(str, partials))
        checks.append(Check("checkpoint locations", True, detail, required=False))
    for i, path in enumerate(found):
        in_use = i == 0 and not (explicit and path != Path(explicit).expanduser())
        checks.append(_file_check(path, in_use, load))
    return checks


def _file_check(path: Path, in_use: bool, load: bool) -> Check:
    name = f"checkpoint {path}" + ("" if in_use else " (not used: an earlier location wins)")
    try:
        size = path.stat().st_size
        md5 = cached_md5(path)
    except OSError as err:
        return Check(name, False, f"cannot read it ({err.strerror or err})",
                     "check the file's permissions, or delete it and run `avatarcam download-model`", required=in_use)
    known = ("matches the published vox-adv-cpk.pth.tar" if md5 == KNOWN_MD5
             else f"not the published inference file (md5 {KNOWN_MD5}); fine if it is the full training checkpoint")
    detail = f"{megabytes(size)}, md5 {md5} ({known})"
    if not load:
        return Check(name, True, detail, required=in_use)
    try:
        kind = verify_loads(path)
    except CheckpointError as err:
        return Check(name, False, f"{detail}; does not load: {err}",
                     f"delete {path} and run `avatarcam download-model`", required=in_use)
    return Check(name, True, f"{detail}; loads strictly ({kind})", required=in_use)
