# Pseudo-sensing U-Nets A_i / A_v at the published widths and the paper's schedule
# (DESIGN section 2): 128x128 patches from a stride-200 grid (the code's patching), batch 64,
# Adam 1e-4, x0.5 every 10 epochs, 40 epochs (the paper). tools/train_sensing.py sets `target`,
# `data_root`, `pseudo_gt` and `cache_dir` for each of the two runs.
# Pseudo ground truth: the paper fuses with 15 published methods, the public code with DIDFuse and
# AUIF. The default here is the toolkit's evidence-based choice (configs/sensing/small_cpu.py says
# why): fusions that keep single-modality targets at near full contrast. Add published methods'
# results with --pseudo-gt folder:NAME=PATH, or the public code's DIDFuse (and TarDAL, SeAFusion) run
# natively: --pseudo-gt didfuse,tardal --weights didfuse=FOLDER,tardal=tardal.pt (or
# dict(method="didfuse", weights=FOLDER) here); leave out those that fade thermal targets.
widths = (64, 128, 256, 512, 1024)
patch_size = 128
stride = 200
max_patches = None  # every patch that passes the contrast filter
pseudo_gt = (dict(method="laplacian", levels=5), dict(method="laplacian", levels=6),
             dict(method="laplacian", levels=7))
epochs = 40
batch_size = 64
lr = 1e-4
lr_step = 10

model = dict(type="SensingModel", widths=widths, target="ir")
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="SensingPatchDataset", data_root=None, target="ir", pseudo_gt=pseudo_gt,
                 patch_size=patch_size, stride=stride, max_patches=max_patches),
)
train_cfg = dict(by_epoch=True, max_epochs=epochs)
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="Adam", lr=lr))
param_scheduler = [dict(type="StepLR", by_epoch=True, step_size=lr_step, gamma=0.5)]
default_hooks = dict(
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=3),
    logger=dict(type="LoggerHook", interval=20),
)
custom_hooks = [dict(type="LossHistoryHook")]
randomness = dict(seed=0)
log_level = "INFO"
