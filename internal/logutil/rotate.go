package logutil

import (
	"encoding/json"
	"errors"
	"fmt"

	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// errRotationOutput is etcd's error when --enable-log-rotation has no
// single file among --log-outputs.
var errRotationOutput = errors.New("--log-outputs requires a single file path when --log-rotate-config-json is defined")

// logRotationConfig is the shape --log-rotation-config-json decodes into;
// named as etcd names it, so json's type errors read the same.
type logRotationConfig struct {
	*lumberjack.Logger
}

// rotation returns the one file output to rotate and its rotating writer,
// with etcd's errors for a missing or second file and for bad JSON.
func (c LogConfig) rotation() (string, *lumberjack.Logger, error) {
	var files []string
	for _, o := range c.Outputs {
		switch o {
		case OutputDefault, OutputStderr, OutputStdout:
		default:
			files = append(files, o)
		}
	}
	// etcd's rule: one output that is not a file, or two files, is an
	// error; stderr and stdout alone leave nothing to rotate.
	if (len(c.Outputs) <= 1 && len(files) == 0) || len(files) > 1 {
		return "", nil, errRotationOutput
	}
	cfg := logRotationConfig{Logger: &lumberjack.Logger{}}
	if err := json.Unmarshal([]byte(c.RotationJSON), &cfg); err != nil {
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntaxErr):
			return "", nil, fmt.Errorf("improperly formatted log rotation config: %w", err)
		case errors.As(err, &typeErr):
			return "", nil, fmt.Errorf("invalid log rotation config: %w", err)
		default:
			return "", nil, fmt.Errorf("fail to unmarshal log rotation config: %w", err)
		}
	}
	if cfg.Logger == nil { // the JSON was null
		cfg.Logger = &lumberjack.Logger{}
	}
	if len(files) == 0 {
		return "", nil, nil
	}
	cfg.Filename = files[0]
	return files[0], cfg.Logger, nil
}

func newEncoder(format string) zapcore.Encoder {
	if format == "console" {
		return zapcore.NewConsoleEncoder(EncoderConfig())
	}
	return zapcore.NewJSONEncoder(EncoderConfig())
}
