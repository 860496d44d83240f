//! The layout change the decode kernels end with.

/// `y [M, N]` from `yt [N, M]`: the decode kernels compute yᵀ so that every parallel
/// task owns a contiguous block of output rows. One row needs no copy.
pub fn untranspose(yt: Vec<f32>, m: usize, n: usize) -> Vec<f32> {
    if m == 1 {
        return yt;
    }
    let mut y = vec![0f32; n * m];
    for (j, col) in yt.chunks_exact(m).enumerate() {
        for (i, &v) in col.iter().enumerate() {
            y[i * n + j] = v;
        }
    }
    y
}
