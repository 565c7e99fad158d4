
set terminal pngcairo size 1100,800 font "sans,10"
set output "/work/main/docs/bench/throughput.png"
set multiplot layout 2,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set offsets 0, 0, graph 0.05, 0
set grid ytics
set key top right
set xtics rotate by -25
set title "Messages per second (median; higher is better)"
set ylabel "msgs/s"
plot "/work/main/docs/bench/throughput.dat" using 2:xtic(1) title "Postfix" lc rgb "#7f7f7f", "/work/main/docs/bench/throughput.dat" using 3 title "sealpost" lc rgb "#1f77b4"
set title "CPU milliseconds per message, all the MTA's processes (median; lower is better)"
set ylabel "CPU ms / msg"
plot "/work/main/docs/bench/throughput.dat" using 4:xtic(1) title "Postfix" lc rgb "#7f7f7f", "/work/main/docs/bench/throughput.dat" using 5 title "sealpost" lc rgb "#1f77b4"
unset multiplot
