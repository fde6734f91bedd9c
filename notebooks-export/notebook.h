/* Export of run logs as a Jupyter notebook (nbformat 4.5) that explains and redraws every
 * figure with h5py + matplotlib, built as a JSON tree with jansson. */
#ifndef NS_NOTEBOOK_H
#define NS_NOTEBOOK_H

/* Writes the notebook for the run logs log_paths[0..n) to out_path. Every log is validated
 * with ns_log_open first. When figures_dir is not NULL, the gnuplot PNGs found there
 * (<kind>*.png: fluctuation, boxes, gradients, lipschitz, training, layers) are embedded
 * base64 as display_data outputs of the matching code cell; a figures_dir that cannot be read
 * is an error. In the code cells a log's path is relative to the notebook's directory when
 * the log lies under it, absolute otherwise. Returns 0 or -1 with one line in err. */
int ns_export_notebook(const char *const *log_paths, int n, const char *figures_dir,
                       const char *out_path, char *err);

#endif
