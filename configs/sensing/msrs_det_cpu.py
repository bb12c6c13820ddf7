# Sensing nets A_i / A_v on real images: the msrs_det benchmark's TRAIN part (150 MSRS test-split
# pairs; `--split-lists benchmarks/msrs_det_split` keeps val and test out), the CPU recipe of
# configs/sensing/small_cpu.py, with the paper's pseudo ground truth: DIDFuse and TarDAL, the
# authors' weights (never shipped; the user passes them). The command (README, "Real data: MSRS
# detection"):
#   python tools/train_sensing.py --config msrs_det_cpu --data ../shared/data/msrs_det \
#       --split-lists benchmarks/msrs_det_split --out work_dirs/emma_msrs_det/sensing \
#       --weights didfuse=../shared/weights,tardal=../shared/weights/tardal.pt
#
# Pseudo ground truth chosen by measurement on real images, never test (benchmarks/msrs_det_notes.md,
# sections 2, 6 and 10). Each candidate's own target retention from the human labels (objects labelled
# in one modality only) on the train + val parts (195 pairs, 411 IR-only / 49 VI-only objects):
# ir 1.00 / 0.40, vi 0.39 / 1.00, mean 0.49 / 0.48, dwt 0.55 / 0.51, gff 0.76 / 0.83, max 0.78 / 0.82,
# laplacian 4 levels 0.81 / 0.79, 5 levels 0.86 / 0.88, 6 levels 0.87 / 0.91, 7 levels 0.87 / 0.92,
# didfuse 0.40 / 0.50, tardal 0.94 / 0.68. What decides is the EMMA each set makes: EMMA's recipe
# (configs/emma/msrs_det_cpu.py) run through sensing nets trained on each, scored on the val part
# by its selection rule (the worse of IR-only / VI-only retention): with the EMMA steps at 2e-5,
# Laplacian 5/6/7 levels gave 0.834 / 0.782 (a1 1, step 400), DIDFuse + TarDAL 0.874 / 0.825 (a1 1,
# step 400) and 0.847 / 0.833 (a1 0.3, step 550, selected). (At 2e-4 the order was the other way
# round: 0.78 / 0.76 against 0.73 / 0.85.)
_base_ = ["./small_cpu.py"]

pseudo_gt = ("didfuse", "tardal")  # their weights: --weights didfuse=DIR,tardal=tardal.pt
train_dataloader = dict(dataset=dict(pseudo_gt=pseudo_gt))
