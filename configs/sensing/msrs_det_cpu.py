# Sensing nets A_i / A_v on real images: the msrs_det benchmark's TRAIN part (150 MSRS test-split
# pairs; `--split-lists benchmarks/msrs_det_split` keeps val and test out), the CPU recipe of
# configs/sensing/small_cpu.py. The command (README, "Real data: MSRS detection"):
#   python tools/train_sensing.py --config msrs_det_cpu --data ../shared/data/msrs_det \
#       --split-lists benchmarks/msrs_det_split --out work_dirs/emma_msrs_det/sensing
#
# Pseudo ground truth chosen by measurement on real images: target retention from the human labels
# (objects labelled in one modality only) of each candidate on the train + val parts, never test
# (benchmarks/msrs_det_pseudo_gt.py; 195 pairs, 411 IR-only / 49 VI-only objects): ir 1.00 / 0.40,
# vi 0.39 / 1.00, mean 0.49 / 0.48, dwt 0.55 / 0.51, gff 0.76 / 0.83, max 0.78 / 0.82, laplacian
# 4 levels 0.81 / 0.79, 5 levels 0.86 / 0.88, 6 levels 0.87 / 0.91, 7 levels 0.87 / 0.92. The three
# deep Laplacian pyramids keep both kinds of target best, as on the synthetic scenes, so they stay the
# pseudo ground truth. DIDFuse and TarDAL (the public code's and the paper's choices, the authors'
# weights) measured the same way (eval_fusion --targets labels on their fused train and val pairs):
# didfuse 0.40 / 0.50, tardal 0.94 / 0.68. EMMA's recipe run through sensing nets trained on the two
# (--pseudo-gt didfuse,tardal --weights ...) selects 0.73 / 0.85 on val at step 400, against 0.78 / 0.76
# with these three: the worse of the two is lower, so the Laplacian pseudo ground truth stays
# (benchmarks/msrs_det_notes.md, section 6).
_base_ = ["./small_cpu.py"]

pseudo_gt = (dict(method="laplacian", levels=5), dict(method="laplacian", levels=6),
             dict(method="laplacian", levels=7))
train_dataloader = dict(dataset=dict(pseudo_gt=pseudo_gt))
