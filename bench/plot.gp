# plot.gp: requests/s of each proxy per workload, normalised to nginx = 1.0.
# report.py calls: gnuplot -e "datafile='...'; outfile='...'" plot.gp
set terminal pngcairo size 1100,520 noenhanced font ",10"
set output outfile
set title "requests/s relative to nginx (1.0 = nginx; higher is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right
set grid ytics
set yrange [0:*]
set ylabel "relative to nginx"
set xtics rotate by -30
set datafile separator "\t"
set datafile missing "NaN"
plot datafile using 2:xtic(1) title columnheader(2) lc rgb "#4c72b0", \
     '' using 3 title columnheader(3) lc rgb "#dd8452", \
     '' using 4 title columnheader(4) lc rgb "#55a868", \
     1 with lines dt 2 lc rgb "black" notitle
