# Writes tests/data/formats/imitation_hf with the real `datasets` library, the way
# imitation.data.huggingface_utils.trajectories_to_dict + Dataset.from_dict + save_to_disk do.
import datasets, numpy as np, json, sys
out = sys.argv[1]
lens = [3, 5]
def obs(i, T): return (np.arange((T + 1) * 4, dtype=np.float32).reshape(T + 1, 4) * 0.5 + i)
def acts(i, T): return (np.arange(T * 2, dtype=np.float32).reshape(T, 2) * -0.25 + i)
def rews(i, T): return np.linspace(0.0, 1.0, T) + i
d = dict(
    obs=[obs(i, T) for i, T in enumerate(lens)],
    acts=[acts(i, T) for i, T in enumerate(lens)],
    infos=[[json.dumps({"is_success": t == T - 1}) for t in range(T)] for T in lens],
    terminal=[True, False],
    rews=[rews(i, T) for i, T in enumerate(lens)],
)
datasets.Dataset.from_dict(d).save_to_disk(out)
