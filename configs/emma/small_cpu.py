# EMMA on a CPU: the recipe of the toolkit's default checkpoint (README, model card), trained on the
# synthetic default's MSRS-layout training split through the frozen sensing nets of
# configs/sensing/small_cpu.py. The paper's method: the U-Fuser at the published widths (so the
# checkpoint has exactly the official EMMA.pth layout), frozen sensing nets, the three-term loss with
# a2 = 0.1, the equivariance prior on (3 shifts, 3 rotations, 3 flips).
# Changed against the public recipe, for a CPU run of about 30 minutes on two idle cores:
# - a1 = 0.35, the visible term's weight (the paper: 1). With these small sensing nets the visible term
#   wins at a1 = 1: held-out IR-only / VI-only retention 0.30 / 0.84 after 400 steps. a1 = 0.5: about
#   0.55 / 0.80 from step 500 on; a1 = 0.25: 1.10 / 0.48 at step 500 (the visible targets lost);
#   a1 = 0.35: 0.78 / 0.79 at step 500;
# - 64x64 patches on a stride-32 grid, 1,200 of them (the synthetic people are 30-85 px tall; 32-px
#   patches, smaller than a person, gave 0.17 IR-only retention), batch 4, 5 epochs = 1,500 steps
#   (the public code: 128-px patches, batch 4, 120 epochs of MSRS);
# - Adam at 5e-4 after a 30-step linear warm-up, halved every 2 epochs, gradients clipped at norm 1
#   (the public code: 1e-4 for 120 epochs). At 1.5e-3 without warm-up the output sigmoid saturated
#   within 50 steps (a constant image, trivially equivariant, with zero gradient);
# - model selection (not in the public code, which keeps the last epoch): every 100 steps the fuser
#   fuses 40 held-out synthetic scenes of seed 1 (training: seed 0's MSRS-layout training split;
#   the reported retention: other seeds) and the one whose worse of IR-only / VI-only target
#   retention is highest is exported. On this schedule the balance between the two sensing terms
#   swings: one run's IR-only retention read 0.31, 0.27 after 300 and 600 steps, another's 0.16,
#   0.61, 0.77 after 150, 300, 450.
_base_ = ["./paper.py"]

a1 = 0.35
patch_size = 64
stride = 32
max_patches = 1200
epochs = 5
batch_size = 4
lr = 5e-4
lr_step = 2

model = dict(a1=a1)
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
    dict(type="StepLR", by_epoch=True, step_size=lr_step, gamma=0.5),
]
default_hooks = dict(logger=dict(interval=25))
# The selection scores a moving average of the weights (momentum 0.01: about the last 100 steps),
# which damps the step-to-step swing between the IR and the visible term. It starts at step 300: an
# average begun at step 0 still holds 13% of the random initial weights at step 200, and that blend
# scored well on retention (1.02 / 0.83 on seed 7) while blurring and washing out the image (Qabf 0.18
# against 0.60 for Laplacian) and losing 8.8 mAP@0.5 against IR alone downstream.
custom_hooks = [
    dict(type="LossHistoryHook"),
    dict(type="CappedEMAHook", momentum=0.01, begin_iter=300),  # mmengine EMAHook, fine for short runs
    dict(type="RetentionSelectionHook", interval=100, seed=1, count=40),
]
