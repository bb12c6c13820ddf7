# EMMA's fusion network F at the published widths, trained as published (DESIGN section 2). The paper
# and the authors' public code disagree on some values; each line says which one it follows.
# Loss: L(A_i(f), i) + a1 L(A_v(f), v) + a2 L(f_t, F(A_i(f_t), A_v(f_t))) through the frozen sensing
# nets, L = l1 + l1 of the Sobel/8 gradient (the code's kornia SpatialGradient). tools/train_emma.py
# fills in sensing_ir / sensing_vi (checkpoint paths).
channels = (8, 16, 32, 32)  # paper and code
heads = 8
patch_size = 128  # paper and code: 128x128 MSRS training patches
stride = 200  # code: a stride-200 grid, low-contrast patches dropped (the paper says random patches)
max_patches = None
epochs = 120  # code (the paper says 100)
batch_size = 8  # paper (the code uses 4)
lr = 1e-4  # paper and code: Adam
lr_step = 20  # paper and code: x0.5 every 20 epochs
a1 = 1.0  # paper
a2 = 0.1  # paper
transform = dict(shifts=3, angles=(10.0, 130.0, 250.0), flips=("h", "v", "hv"))  # code

model = dict(type="EMMAModel", fuser=dict(channels=channels, heads=heads), sensing_ir=None, sensing_vi=None,
             a1=a1, a2=a2, equivariance=True, transform=transform)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="EMMAPatchDataset", data_root=None, patch_size=patch_size, stride=stride,
                 max_patches=max_patches),
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
