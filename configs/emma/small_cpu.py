# EMMA on a CPU: the recipe of the toolkit's default checkpoint (README, model card), trained on the
# synthetic default's MSRS-layout training split through the frozen sensing nets of
# configs/sensing/small_cpu.py. The paper's method: the U-Fuser at the published widths (so the
# checkpoint has exactly the official EMMA.pth layout), frozen sensing nets, the three-term loss with
# a2 = 0.1, the equivariance prior on (3 shifts, 3 rotations, 3 flips).
# Changed against the public recipe, for a CPU run of about half an hour:
# - a warm start (not in the paper, whose fuser starts from random weights): for the first 300 steps
#   the fuser fits the 5-level Laplacian fusion, one of the sensing nets' pseudo ground truths, i.e.
#   it starts where the frozen nets are faithful; then EMMA's three terms alone train it. Why: from
#   random weights 1,500 steps reached the same training loss as that Laplacian fusion (0.116 vs
#   0.113 on 200 training patches) with a washed-out image that the small sensing nets map back as
#   well (IR term 0.072 vs 0.082); that fuser kept targets (held-out retention 0.73 / 0.74) but lost
#   structure (Qabf 0.25 vs 0.60) and trailed IR alone downstream (45.8 vs 50.7 mAP@0.5, 3 seeds).
#   Measured on a held-out synthetic set (seed 5, never used for training or for the README's
#   tables; det / seg, seeds 0-2): IR 45.3 / 21.4, VI 34.4 / 28.0, Laplacian 56.6 / 33.0, this
#   recipe 56.0 / 29.4, the previous one (from random weights) 45.9 / 29.0 (seed 0 only), the warm
#   start alone (step 300, no EMMA step yet) 56.8 / 33.0 (seed 0): EMMA's loss, through these small
#   sensing nets, moves the fuser towards the targets (IR-only retention up) at some cost to the
#   segmenter;
# - a1 = 0.6, the visible term's weight (the paper: 1). After the warm start, a1 = 1 drifts towards
#   the visible image (held-out IR-only retention 0.75, 0.44, 0.35 after 400, 500, 600 steps);
#   a1 = 0.7: 0.97, 0.86, 0.77; a1 = 0.6: between 0.89 and 1.09 up to step 1,200, VI-only 0.72-0.86;
# - Adam at 5e-4 during the warm start, 2e-4 from step 300, 8e-5 from step 900, gradients clipped at
#   norm 1 (the public code: 1e-4 for 120 epochs). At 5e-4 after the warm start the output sigmoid
#   saturated within 120 EMMA steps (a1 = 0.5: a constant image, zero gradient, retention 0 / 0);
# - 64x64 patches on a stride-32 grid, 1,200 of them (the synthetic people are 30-85 px tall; 32-px
#   patches, smaller than a person, gave 0.17 IR-only retention), batch 4, 4 epochs = 1,200 steps
#   (the public code: 128-px patches, batch 4, 120 epochs of MSRS);
# - model selection (not in the public code, which keeps the last epoch): every 100 EMMA steps the
#   fuser fuses 40 held-out synthetic scenes of seed 1 (training: seed 0's MSRS-layout training
#   split; the reported retention: other seeds) and the one whose worse of IR-only / VI-only target
#   retention is highest is exported (the shipped checkpoint: step 400, 0.89 / 0.86).
_base_ = ["./paper.py"]

a1 = 0.6
patch_size = 64
stride = 32
max_patches = 1200
epochs = 4
batch_size = 4
lr = 5e-4
warm_start = dict(method="laplacian", levels=5, iters=300)

model = dict(a1=a1, warm_start=warm_start)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(patch_size=patch_size, stride=stride, max_patches=max_patches),
)
train_cfg = dict(max_epochs=epochs)
optim_wrapper = dict(optimizer=dict(lr=lr), clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(type="MultiStepLR", by_epoch=False, milestones=[300, 900], gamma=0.4),
]
default_hooks = dict(logger=dict(interval=25))
# The selection scores a moving average of the weights (momentum 0.01: about the last 100 steps),
# which damps the step-to-step swing between the IR and the visible term. It starts with the EMMA
# steps: an average that still holds the warm start (or, without one, the random initial weights)
# scores what the loss has not trained yet.
custom_hooks = [
    dict(type="LossHistoryHook"),
    dict(type="CappedEMAHook", momentum=0.01, begin_iter=300),  # mmengine EMAHook, fine for short runs
    dict(type="RetentionSelectionHook", interval=100, seed=1, count=40, begin=300),
]
