# EMMA's fusion network F at the published widths and the paper's schedule (DESIGN
# section 2): MSRS training patches 128x128 (stride-200 grid, low-contrast patches
# dropped), batch 8, Adam 1e-4, x0.5 every 20 epochs, 120 epochs; loss
# L(A_i(f), i) + a1 L(A_v(f), v) + a2 L(f_t, F(A_i(f_t), A_v(f_t))) with the frozen sensing
# nets. tools/train_emma.py fills in sensing_ir / sensing_vi (checkpoint paths).
channels = (8, 16, 32, 32)
heads = 8
patch_size = 128
stride = 200
max_patches = None
epochs = 120
batch_size = 8
lr = 1e-4
lr_step = 20
a1 = 1.0
a2 = 0.1
transform = dict(shifts=3, angles=(10.0, 130.0, 250.0), flips=("h", "v", "hv"))

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
