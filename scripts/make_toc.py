"""Regenerate _toc.yml: the fixed pages, then each theme with the chapters (and their notebooks)
that git tracks. Run from the repository root after adding a chapter: python scripts/make_toc.py"""
from pathlib import Path
import subprocess
tracked=set(subprocess.run(["git","ls-files"],capture_output=True,text=True).stdout.split())
class P:
    def __init__(self,p): self.p=p
    def exists(self): return self.p in tracked
Path_=Path
Path=P
themes = [
 ("Score matching and foundations","foundations",["hyvarinen2005estimation","vincent2011connection","sohldickstein2015deep","song2019sliced","song2019generative"]),
 ("DDPM family and samplers","ddpm-family",["ho2020denoising","nichol2021improved","song2021denoising","kingma2021variational","bao2022analytic"]),
 ("SDE view and EDM","sde-edm",["song2021score","karras2022elucidating"]),
 ("Conditioning and inverse problems","conditioning",["dhariwal2021diffusion","ho2022classifier","blattmann2022retrieval","ramesh2022hierarchical","saharia2022image","li2022srdiff","choi2021ilvr","chung2022come"]),
 ("Efficiency","efficiency",["jolicoeurmartineau2021gotta","jing2022subspace","luhman2022improving"]),
 ("Related ideas","related",["kingma2014auto","abstreiter2021diffusion","havasi2019minimal","harsha2007communication","theis2022lossy"]),
]
out = ["# Table of contents: papers grouped by theme; each lab notebook sits under its chapter.",
"format: jb-book","root: book/intro","parts:",
"  - caption: Start here","    chapters:","      - file: book/papers/index","      - file: book/leaderboard","      - file: book/timeline","      - file: book/running","      - file: book/architecture",
"  - caption: The common language","    chapters:","      - file: book/unified-view","      - file: book/questions"]
for cap, slug, keys in themes:
    out += [f"  - caption: {cap}", "    chapters:", f"      - file: book/themes/{slug}"]
    for k in keys:
        if Path(f"book/papers/{k}.md").exists():
            out.append(f"      - file: book/papers/{k}")
            if Path(f"notebooks/{k}.ipynb").exists():
                out += ["        sections:", f"          - file: notebooks/{k}"]
out += ["  - caption: Reference","    chapters:","      - file: book/results","      - file: book/samplers","      - file: book/benchmarks","        sections:","          - file: benchmarks/results_samplers","      - file: book/scale","      - file: book/status","      - file: book/bibliography"]
Path_("_toc.yml").write_text("\n".join(out)+"\n")
